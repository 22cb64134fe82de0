"""The target PACS's ingestion rules: what a migrated object must carry to be accepted.

Why rules as data: every new PACS has its own ingestion policy (required attributes,
SOP classes it stores, transfer syntaxes it accepts, character sets it renders, what
it does with private tags), and a migration team must check the legacy archive
against *that* policy before the bulk run, not discover it from rejected C-STOREs.
The YAML format is documented in fixtures/ingestion-rules.yaml; a mistake names the
file, line and field (``rules.yaml:7: required[2]: unknown DICOM keyword 'PatientNam'``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydicom.datadict import tag_for_keyword
from pydicom.uid import UID

from simulators.common.marked_yaml import parse_marked_yaml
from simulators.errors import ConfigError, ScenarioError
from simulators.world.seeding import is_valid_uid

#: Type 1 and Type 2 attributes of the Patient, General Study, General Series, General
#: Equipment, General Image and SOP Common modules that every image IOD carries: a
#: Type 2 attribute may be empty, but it must be present (PS3.5 7.4).
DEFAULT_REQUIRED: tuple[str, ...] = (
    "PatientName", "PatientID", "PatientBirthDate", "PatientSex",
    "StudyInstanceUID", "StudyDate", "StudyTime", "ReferringPhysicianName", "StudyID",
    "AccessionNumber",
    "Modality", "SeriesInstanceUID", "SeriesNumber",
    "Manufacturer", "InstanceNumber",
    "SOPClassUID", "SOPInstanceUID",
)
#: Default character sets: ASCII (empty or ISO_IR 6), Latin-1 and UTF-8.
DEFAULT_CHARSETS: frozenset[str] = frozenset({"", "ISO_IR 6", "ISO_IR 100", "ISO_IR 192"})
PRIVATE_TAG_POLICIES = ("flag", "allow")
_FIELDS = ("required", "allowed_sop_classes", "allowed_transfer_syntaxes", "allowed_charsets",
           "private_tags")


@dataclass(frozen=True)
class IngestionRules:
    """What the target accepts. ``None`` for a SOP class or transfer syntax set means
    "any" (any non-retired SOP class; any transfer syntax)."""

    required: tuple[str, ...] = DEFAULT_REQUIRED
    allowed_sop_classes: frozenset[str] | None = None
    allowed_transfer_syntaxes: frozenset[str] | None = None
    allowed_charsets: frozenset[str] = DEFAULT_CHARSETS
    private_tags: str = "flag"

    def __post_init__(self) -> None:
        if self.private_tags not in PRIVATE_TAG_POLICIES:
            raise ConfigError("private_tags must be 'flag' or 'allow'",
                              private_tags=self.private_tags)
        unknown = [kw for kw in self.required if tag_for_keyword(kw) is None]
        if unknown:
            raise ConfigError("unknown DICOM keyword(s) in required", keywords=",".join(unknown))

    @classmethod
    def default(cls) -> "IngestionRules":
        """The rules of a typical modern PACS (see fixtures/ingestion-rules.yaml)."""
        return cls()

    def sop_class_allowed(self, sop_class: str) -> bool:
        """True when the target stores this SOP class under these rules."""
        if self.allowed_sop_classes is not None:
            return sop_class in self.allowed_sop_classes
        return not UID(sop_class).is_retired

    @classmethod
    def load(cls, path: Path) -> "IngestionRules":
        """Read rules from YAML; every error names ``file:line: field``."""
        return cls.from_mapping(read_rules_yaml(path), str(path))

    @classmethod
    def from_mapping(cls, data: Any, source: str) -> "IngestionRules":
        """Rules from an already-read (line-marked) mapping; ``source`` names the file
        in errors. Lets a caller take its own sections (a relay's ``morph:``) out first."""
        return cls(**_parse(data, source))


def read_rules_yaml(path: Path) -> Any:
    """A rules file as line-marked YAML (so every later error can name its line)."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{source}: cannot read ingestion rules: {exc}") from exc
    if not text.strip():
        raise ConfigError(f"{source}:1: the ingestion rules file is empty")
    try:
        return parse_marked_yaml(text, source, error=ScenarioError,
                                 not_mapping="the rules file must be a mapping of key: value "
                                             "at the top level")
    except ScenarioError as exc:  # file:line: field: message, as every YAML error reads
        raise ConfigError(str(exc)) from exc


def _where(data: Any, source: str, key: str | None = None, index: int | None = None) -> str:
    """``file:line`` of a key (or of item ``index`` of a list) in a marked YAML node."""
    line = getattr(getattr(data, "mark", None), "line", "?")
    if key is not None and hasattr(data, "key_marks") and key in data.key_marks:
        line = data.key_marks[key].line
    if index is not None and hasattr(data, "item_marks") and index < len(data.item_marks):
        line = data.item_marks[index].line
    return f"{source}:{line}"


def _fail(where: str, field: str, message: str) -> ConfigError:
    return ConfigError(f"{where}: {field}: {message}")


def _strings(data: Any, key: str, source: str) -> list[str]:
    value = data[key]
    if not isinstance(value, list):
        raise _fail(_where(data, source, key), key, "must be a list")
    for index, item in enumerate(value):
        if not isinstance(item, str):
            raise _fail(_where(value, source, index=index), f"{key}[{index}]",
                        f"must be text, not {item!r}")
    return value


def _uids(data: Any, key: str, source: str) -> frozenset[str] | None:
    value = data.get(key)
    if value is None or value == "any":
        return None
    items = _strings(data, key, source)
    for index, item in enumerate(items):
        if not is_valid_uid(item):
            raise _fail(_where(data[key], source, index=index), f"{key}[{index}]",
                        f"{item!r} is not a valid UID")
    return frozenset(items)


def _parse(data: Any, source: str) -> dict[str, Any]:
    for key in data:
        if key not in _FIELDS:
            raise _fail(_where(data, source, key), str(key),
                        f"unknown field; expected one of {', '.join(_FIELDS)}")
    fields: dict[str, Any] = {}
    if "required" in data:
        required = _strings(data, "required", source)
        for index, keyword in enumerate(required):
            if tag_for_keyword(keyword) is None:
                raise _fail(_where(data["required"], source, index=index), f"required[{index}]",
                            f"unknown DICOM keyword {keyword!r}")
        fields["required"] = tuple(required)
    fields["allowed_sop_classes"] = _uids(data, "allowed_sop_classes", source)
    fields["allowed_transfer_syntaxes"] = _uids(data, "allowed_transfer_syntaxes", source)
    if "allowed_charsets" in data:
        fields["allowed_charsets"] = frozenset(
            item.strip() for item in _strings(data, "allowed_charsets", source))
    if "private_tags" in data:
        policy = data["private_tags"]
        if policy not in PRIVATE_TAG_POLICIES:
            raise _fail(_where(data, source, "private_tags"), "private_tags",
                        f"{policy!r} is not one of {', '.join(PRIVATE_TAG_POLICIES)}")
        fields["private_tags"] = policy
    return fields


__all__ = ["IngestionRules", "DEFAULT_REQUIRED", "DEFAULT_CHARSETS", "PRIVATE_TAG_POLICIES"]
