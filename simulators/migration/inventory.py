"""What one archive says it holds of one study, asked over the wire by C-FIND.

The same three hierarchical queries run against the legacy and the target (study,
its series, each series' images: PS3.4 C.4.1.2.1 requires the unique keys above
the level), so the validator compares like with like, and the C-GET relay learns
the SOP classes it must negotiate.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pydicom.dataset import Dataset

from simulators.dicom.qrscu import QrClient

STUDY_KEYS = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate",
              "AccessionNumber", "ModalitiesInStudy", "NumberOfStudyRelatedSeries",
              "NumberOfStudyRelatedInstances")
SERIES_KEYS = ("SeriesInstanceUID", "Modality", "SeriesNumber", "NumberOfSeriesRelatedInstances")
IMAGE_KEYS = ("SOPInstanceUID", "SOPClassUID", "InstanceNumber")
DEMOGRAPHICS = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex")


def text(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword, "")
    if value is None:
        return ""
    if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue":
        return "\\".join(str(v) for v in value)
    return str(value).strip()


@dataclass
class StudyInventory:
    """``found`` is False when the archive does not know the study at all."""

    study_uid: str
    found: bool = False
    demographics: dict[str, str] = field(default_factory=dict)
    #: Every STUDY-level match's demographics (an archive that keys studies by patient,
    #: such as Orthanc, answers a split study twice).
    answers: list[dict[str, str]] = field(default_factory=list)
    series: dict[str, str] = field(default_factory=dict)  # series UID -> Modality
    instances: dict[str, tuple[str, str]] = field(default_factory=dict)  # SOP -> (series, class)

    @property
    def sop_classes(self) -> list[str]:
        return sorted({sop_class for _, sop_class in self.instances.values() if sop_class})


def take_inventory(session: QrClient, study_uid: str) -> StudyInventory:
    """Study, series and image level C-FIND for one study."""
    inventory = StudyInventory(study_uid)
    studies = session.find_matches("STUDY", {"StudyInstanceUID": study_uid}, keys=STUDY_KEYS)
    if not studies:
        return inventory
    inventory.found = True
    inventory.answers = [{k: text(match, k) for k in DEMOGRAPHICS} for match in studies]
    inventory.demographics = inventory.answers[0]
    for series in session.find_matches("SERIES", {"StudyInstanceUID": study_uid},
                                       keys=SERIES_KEYS):
        series_uid = text(series, "SeriesInstanceUID")
        inventory.series[series_uid] = text(series, "Modality")
        for image in session.find_matches("IMAGE", {"StudyInstanceUID": study_uid,
                                                    "SeriesInstanceUID": series_uid},
                                          keys=IMAGE_KEYS):
            inventory.instances[text(image, "SOPInstanceUID")] = (series_uid,
                                                                   text(image, "SOPClassUID"))
    return inventory


__all__ = ["StudyInventory", "take_inventory", "DEMOGRAPHICS", "text"]
