"""hl7 subpackage."""
