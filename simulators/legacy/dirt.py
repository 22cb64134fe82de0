"""Dirt: the data-quality problems real legacy archives carry, injected on purpose.

Why planned per patient and recorded: a migration rehearsal is only worth as much as
its ground truth. Each patient's dirt is decided from its own seeded stream, before
any object is built, as a :class:`StudyDirt` per study; the seeder applies exactly
that and writes it into ``manifest.json``, so "every injected defect is found and
clean studies raise nothing" can be checked (the contract is mirrored in
simulators/quality/checks.py). The cross-study classes (name and birth-date
conflicts, duplicated SOP Instance UIDs, split studies) are listed by what was
written, not by this plan: every study of a conflicting patient, both holders of a
duplicated UID (membership.py).

Rules that keep defects from hiding or faking each other:

* name and birth-date conflicts only for patients with >= 3 studies, at most one
  altered study per patient each, so the canonical value is on >= 2 studies;
* series-level defects (split, retired, wrong or missing modality) each take their
  own series; a study with too few series simply gets fewer of them;
* the duplicated SOP Instance UID is copied from the patient's earliest study into a
  strictly later one; a split series goes under a fresh patient ID no one else has;
* odd character sets only on all-ASCII studies (mis-declared UTF-8 names would
  decode to different names and fake a name conflict); missing Type 2 attributes
  never include the patient's birth date or name, which the conflict checks compare.
"""

from __future__ import annotations

import random
import unicodedata
from dataclasses import dataclass, field, replace

from pydicom.dataelem import DataElement, RawDataElement
from pydicom.dataset import Dataset

from simulators.errors import ConfigError
from simulators.quality import classes as C
from simulators.quality.classes import DEFECT_CLASSES
from simulators.legacy.history import PatientHistory
from simulators.world.context import StudyContext
from simulators.world.models import Patient
from simulators.world.seeding import derived_random

#: Profiles: chance per eligible study of each class (defaults 0).
_TYPICAL = {C.PATIENT_NAME_CONFLICT: 0.02, C.BIRTH_DATE_CONFLICT: 0.01, C.WRONG_MODALITY: 0.01,
            C.MISSING_MODALITY: 0.01, C.MISSING_TYPE2: 0.03, C.INVALID_VR_VALUE: 0.02,
            C.DUPLICATE_SOP_UID: 0.005, C.RETIRED_SOP_CLASS: 0.03, C.ODD_CHARSET: 0.01,
            C.PRIVATE_TAGS: 0.03, C.SPLIT_STUDY: 0.005}
PROFILES: dict[str, dict[str, float]] = {
    "none": {},
    "typical": _TYPICAL,
    "heavy": {cls: min(0.3, rate * 6 + 0.04) for cls, rate in _TYPICAL.items()},
    **{cls: {cls: 0.35} for cls in DEFECT_CLASSES},
}
PROFILE_HELP = {
    "none": "a clean archive: no defect at all",
    "typical": "each class at a realistic 0.5-3% of eligible studies",
    "heavy": "each class at 7-22% of eligible studies (a neglected archive)",
    **{cls: f"only {cls}, at 35% of eligible studies (targeted tests)" for cls in DEFECT_CLASSES},
}

#: Series-level classes, in the order they claim a series.
SERIES_CLASSES = (C.SPLIT_STUDY, C.RETIRED_SOP_CLASS, C.WRONG_MODALITY, C.MISSING_MODALITY)
#: Type 2 attributes a legacy system dropped (never the demographics compared across studies).
TYPE2_REMOVABLE = ("ReferringPhysicianName", "StudyID", "AccessionNumber", "PatientSex")
#: (keyword, tag, VR, invalid value) - one per checked VR family.
INVALID_VALUES = (
    ("ContentDate", 0x00080023, "DA", b"20191345"),
    ("AcquisitionTime", 0x00080032, "TM", b"256100"),
    ("PatientAge", 0x00101010, "AS", b"45Y "),
    ("PatientWeight", 0x00101030, "DS", b"72,5"),
    ("ImagesInAcquisition", 0x00201002, "IS", b"1a"),
)
#: (declared Specific Character Set, bytes written into Institutional Department Name)
ODD_CHARSETS = (
    ("ISO_IR100", None),  # the classic misspelling (no space): not a defined term
    ("ISO_IR 100", "Radiologie Côte".encode("utf-8")),
    ("ISO_IR 192", "Radiología Núñez ".encode("latin-1")),
)
WRONG_MODALITY_OF = {"CT": "MR", "MR": "CT", "CR": "DX", "DX": "CR", "MG": "DX", "US": "CT"}
RETIRED_US = ("1.2.840.10008.5.1.4.1.1.6", "1.2.840.10008.5.1.4.1.1.3")
PRIVATE_CREATOR = "LEGACY_PACS_1"
#: Fresh patient IDs for split series: far above any patient a history uses.
SPLIT_PATIENT_BASE = 9_000_000_000


@dataclass
class StudyDirt:
    """What to do to one study. Empty means clean (``classes`` is what the manifest lists)."""

    classes: list[str] = field(default_factory=list)
    name_variant: bool = False
    birth_variant: bool = False
    series_defects: dict[int, str] = field(default_factory=dict)  # series number -> class
    retired_class: str = ""
    missing_keyword: str = ""
    invalid: tuple[str, int, str, bytes] | None = None
    charset: tuple[str, bytes | None] | None = None
    private: bool = False
    duplicate_of: int | None = None   # study index whose first image's SOP UID we reuse

    @property
    def touches_instances(self) -> bool:
        """True when objects must be built one by one (not from image templates)."""
        return bool(self.series_defects or self.missing_keyword or self.invalid
                    or self.charset or self.private or self.duplicate_of is not None)


def profile(name: str) -> dict[str, float]:
    """The rates of a named profile; ConfigError naming the known ones otherwise."""
    try:
        return PROFILES[name]
    except KeyError:
        raise ConfigError(f"unknown dirt profile {name!r}; known: {', '.join(PROFILES)}",
                          dirt=name) from None


def plan_patient(seed: int, history: PatientHistory, rates: dict[str, float],
                 ascii_study: dict[int, bool]) -> dict[int, StudyDirt]:
    """The dirt of each study of one patient (study index -> StudyDirt, clean omitted).

    ``ascii_study`` says which studies are all-ASCII (eligible for odd charsets).
    """
    if not rates:
        return {}
    rng = derived_random(seed, "legacy-dirt", history.patient_index)
    plans: dict[int, StudyDirt] = {}
    studies = history.studies

    def dirt(index: int) -> StudyDirt:
        return plans.setdefault(index, StudyDirt())

    def hit(cls: str) -> bool:
        return rng.random() < rates.get(cls, 0.0)

    if len(studies) >= 3:
        for cls, attr in ((C.PATIENT_NAME_CONFLICT, "name_variant"),
                          (C.BIRTH_DATE_CONFLICT, "birth_variant")):
            for study in studies:
                if hit(cls):
                    setattr(dirt(study.index), attr, True)
                    dirt(study.index).classes.append(cls)
                    break
    first = studies[0]
    for study in studies[1:]:
        if study.start.date() > first.start.date() and hit(C.DUPLICATE_SOP_UID):
            dirt(study.index).duplicate_of = first.index
            dirt(study.index).classes.append(C.DUPLICATE_SOP_UID)
            break
    for study in studies:
        _plan_study(rng, study, hit, dirt, ascii_study.get(study.index, False))
    return {index: plan for index, plan in plans.items() if plan.classes}


def _plan_study(rng: random.Random, study, hit, dirt, all_ascii: bool) -> None:  # noqa: ANN001
    free = list(range(study.series, 0, -1))  # the last series first (split takes it)
    for cls in SERIES_CLASSES:
        eligible = {C.SPLIT_STUDY: study.series >= 2 and len(free) == study.series,
                    C.RETIRED_SOP_CLASS: study.modality == "US"}.get(cls, True)
        if free and eligible and hit(cls):
            series = free.pop(0)
            plan = dirt(study.index)
            plan.series_defects[series] = cls
            plan.classes.append(cls)
            if cls == C.RETIRED_SOP_CLASS:
                plan.retired_class = rng.choice(RETIRED_US)
    if hit(C.MISSING_TYPE2):
        dirt(study.index).missing_keyword = rng.choice(TYPE2_REMOVABLE)
        dirt(study.index).classes.append(C.MISSING_TYPE2)
    if hit(C.INVALID_VR_VALUE):
        dirt(study.index).invalid = rng.choice(INVALID_VALUES)
        dirt(study.index).classes.append(C.INVALID_VR_VALUE)
    if all_ascii and hit(C.ODD_CHARSET):
        dirt(study.index).charset = rng.choice(ODD_CHARSETS)
        dirt(study.index).classes.append(C.ODD_CHARSET)
    if hit(C.PRIVATE_TAGS):
        dirt(study.index).private = True
        dirt(study.index).classes.append(C.PRIVATE_TAGS)


# -- injection: study context (both build paths) --------------------------------------
def _strip_accents(text: str) -> str:
    return "".join(ch for ch in unicodedata.normalize("NFKD", text)
                   if not unicodedata.combining(ch))


def name_variant(name: str) -> str:
    """Another spelling of the same person, as a second registration desk typed it:
    accents dropped, else upper-cased, else family and given names swapped."""
    stripped = _strip_accents(name)
    if stripped != name:
        return stripped
    if name.upper() != name:
        return name.upper()
    family, _, given = name.partition("^")
    return f"{given}^{family}" if given and given != family else f"{name}X"


def birth_variant(birth_date: str) -> str:
    """A plausible typo: day and month transposed when that is a date, else one day off."""
    year, month, day = birth_date[:4], birth_date[4:6], birth_date[6:8]
    if day != month and int(day) <= 12:
        return f"{year}{day}{month}"
    return f"{year}{month}{int(day) + 1:02d}" if int(day) < 28 else f"{year}{month}01"


def dirty_context(ctx: StudyContext, plan: StudyDirt | None) -> StudyContext:
    """The study's context with its demographic conflicts applied."""
    if plan is None:
        return ctx
    if plan.name_variant:
        ctx = replace(ctx, patient_name=name_variant(ctx.patient_name))
    if plan.birth_variant and ctx.birth_date:
        ctx = replace(ctx, birth_date=birth_variant(ctx.birth_date))
    return ctx


# -- injection: one built object ------------------------------------------------------
def _raw(tag: int, vr: str, value: bytes) -> RawDataElement:
    """An element written exactly as given (bypassing pydicom's value validation)."""
    if len(value) % 2:
        value += b" "
    return RawDataElement(tag, vr, len(value), value, 0, False, True)


def set_wrong_modality(ds: Dataset) -> None:
    ds.Modality = WRONG_MODALITY_OF.get(str(ds.Modality), "OT")


def set_missing_modality(ds: Dataset) -> None:
    ds.Modality = ""


def set_retired_class(ds: Dataset, sop_class: str) -> None:
    ds.SOPClassUID = sop_class


def set_split_patient(ds: Dataset, other: Patient) -> None:
    """File the object under another patient (as a misfiled series is)."""
    ds.PatientName, ds.PatientID = other.dicom_name, other.patient_id
    ds.PatientBirthDate, ds.PatientSex = other.dicom_birth_date, other.sex
    if not other.dicom_name.isascii() and "SpecificCharacterSet" not in ds:
        ds.SpecificCharacterSet = "ISO_IR 192"


def remove_type2(ds: Dataset, keyword: str) -> None:
    if keyword in ds:
        delattr(ds, keyword)


def set_invalid_value(ds: Dataset, invalid: tuple[str, int, str, bytes]) -> None:
    _keyword, tag, vr, value = invalid
    ds[tag] = _raw(tag, vr, value)


def set_odd_charset(ds: Dataset, charset: tuple[str, bytes | None]) -> None:
    declared, department = charset
    ds.SpecificCharacterSet = declared
    if department is not None:
        ds[0x00081040] = DataElement(0x00081040, "LO", department + b" " * (len(department) % 2))


def add_private_tags(ds: Dataset) -> None:
    block = ds.private_block(0x0019, PRIVATE_CREATOR, create=True)
    block.add_new(0x10, "LO", "ARCHIVED FROM JUKEBOX")
    block.add_new(0x11, "SH", "VOL0042")


def apply_to_instance(ds: Dataset, plan: StudyDirt, series_number: int,
                      split_patient: Patient | None, duplicate_uid: str | None) -> None:
    """Every per-object defect of ``plan`` that concerns this object."""
    series_defect = plan.series_defects.get(series_number)
    if series_defect == C.WRONG_MODALITY:
        set_wrong_modality(ds)
    elif series_defect == C.MISSING_MODALITY:
        set_missing_modality(ds)
    elif series_defect == C.RETIRED_SOP_CLASS:
        set_retired_class(ds, plan.retired_class)
    elif series_defect == C.SPLIT_STUDY and split_patient is not None:
        set_split_patient(ds, split_patient)
    if plan.missing_keyword:
        remove_type2(ds, plan.missing_keyword)
    if plan.invalid:
        set_invalid_value(ds, plan.invalid)
    if plan.charset:
        set_odd_charset(ds, plan.charset)
    if plan.private:
        add_private_tags(ds)
    if duplicate_uid:
        ds.SOPInstanceUID = duplicate_uid


__all__ = ["DEFECT_CLASSES", "PROFILES", "PROFILE_HELP", "StudyDirt", "profile",
           "plan_patient", "dirty_context", "apply_to_instance", "name_variant",
           "birth_variant", "SPLIT_PATIENT_BASE"]
