"""Data quality: the defect classes of a dirty archive and the checks that find them.

Why below legacy and migration: the legacy seeder injects these defects and the
migration validator must recognise exactly the same ones; one definition keeps the
manifest and the verdict speaking the same names.

* :mod:`.classes` - the defect class names;
* :mod:`.values` - value checks per attribute (VR, charset, type 2);
* :mod:`.checks` - per-instance and cross-study checks;
* :mod:`.rules` - site ingestion rules read from YAML.
"""
