"""Tag morphing: the systematic rewrites a migration relay applies, and how they go wrong.

Real migrations rewrite headers on the way (prefix the legacy's patient IDs, fix
name order for the new system's display). One wrong rule corrupts *every* study in
the same way, which is exactly what a sample-first pass exists to catch before the
bulk run. The rules YAML carries them next to the ingestion rules::

    morph:
      PatientID: {prefix: "LEG-"}
      PatientName: {swap: true}     # "FAMILY^GIVEN" becomes "GIVEN^FAMILY"

Morphing needs the relay (``--via get``): with C-MOVE the legacy sends its own
bytes straight to the target and nothing in between can change them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydicom.datadict import dictionary_VR, tag_for_keyword
from pydicom.dataset import Dataset

from simulators.errors import ConfigError
from simulators.quality.rules import IngestionRules, read_rules_yaml

OPERATIONS = ("prefix", "swap")


@dataclass(frozen=True)
class Morph:
    """One rewrite of one attribute."""

    keyword: str
    prefix: str = ""
    swap: bool = False

    def apply(self, ds: Dataset) -> None:
        if self.keyword not in ds:
            return
        value = str(ds[self.keyword].value or "")
        if self.swap:
            parts = value.split("^")
            if len(parts) >= 2:
                parts[0], parts[1] = parts[1], parts[0]
            value = "^".join(parts)
        if self.prefix:
            value = self.prefix + value
        ds[self.keyword].value = value


def apply_all(ds: Dataset, morphs: tuple[Morph, ...]) -> None:
    for morph in morphs:
        morph.apply(ds)


def parse_morphs(data: Any, where: str = "morph") -> tuple[Morph, ...]:
    """``{Keyword: {prefix: ..., swap: ...}}`` -> Morphs; ConfigError naming the field."""
    if data is None:
        return ()
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: must be a mapping of DICOM keyword to rewrite")
    morphs = []
    for keyword, spec in data.items():
        field = f"{where}.{keyword}"
        if tag_for_keyword(str(keyword)) is None:
            raise ConfigError(f"{field}: unknown DICOM keyword {keyword!r}")
        if dictionary_VR(tag_for_keyword(str(keyword))) not in ("LO", "PN", "SH", "CS", "LT"):
            raise ConfigError(f"{field}: only text attributes can be morphed")
        if not isinstance(spec, dict) or not spec or set(spec) - set(OPERATIONS):
            raise ConfigError(f"{field}: expected {{prefix: TEXT}} and/or {{swap: true}}")
        swap = spec.get("swap", False)
        if not isinstance(swap, bool):
            raise ConfigError(f"{field}.swap: must be true or false")
        morphs.append(Morph(str(keyword), str(spec.get("prefix", "") or ""), swap))
    return tuple(morphs)


def load_rules(path: Path | None) -> tuple[IngestionRules, tuple[Morph, ...]]:
    """The ingestion rules and the morphs of one rules file (default rules without one).

    The ``morph`` section is this module's; the rest goes to the seeder's parser
    (:mod:`simulators.quality.rules`), so both report ``file:line: field`` errors.
    """
    if path is None:
        return IngestionRules.default(), ()
    data = read_rules_yaml(Path(path))
    if not isinstance(data, dict) or "morph" not in data:
        return IngestionRules.from_mapping(data, str(path)), ()
    morphs = parse_morphs(data.pop("morph"), f"{path}: morph")
    return IngestionRules.from_mapping(data, str(path)), morphs


__all__ = ["Morph", "apply_all", "parse_morphs", "load_rules"]
