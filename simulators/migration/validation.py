"""Validation of one migrated study: gather the evidence, then judge it.

Source truth is the study's *files* (every instance header, from the served
directory or by C-GET from a remote legacy), never the legacy's C-FIND summary: an
archive's index keeps one value per patient or study, which is precisely what hides
the defects a migration must find. The target's side is its own answer: C-FIND at
STUDY, SERIES and IMAGE level, its C-STORE statuses (relay), and C-GETs of the
instances ``--pixel-check`` names (one sampled instance per study by default, or all)
whose pixel values are compared with the source's copy. What was observed
becomes an :class:`~simulators.migration.judge.Evidence`; the verdict is
:func:`~simulators.migration.judge.judge`'s, whose module docstring lists the only
excuses there are and how each is proven.

Data-quality checks (``check_instance`` per header; the cross-study checks over the
identities recorded with each study) classify the source's defects as in the
seeder's manifest; they never stop or excuse anything by themselves.
"""

from __future__ import annotations

import hashlib
import random
import threading
from dataclasses import dataclass, field
from io import BytesIO
from typing import Callable, Iterable, Sequence

from pydicom.dataset import FileMetaDataset

from simulators.dicom.fast.files import decode_dataset
from simulators.dicom.negotiation_probe import negotiate
from simulators.errors import ConfigError, PacsimError
from simulators.dicom.qrscu import QrClient
from simulators.migration.checkpoint import Checkpoint
from simulators.migration.headers import Header
from simulators.migration.inventory import StudyInventory, take_inventory, text
from simulators.migration.judge import (
    DEMOGRAPHICS, TRANSFER_CLASSES, Evidence, Judged, PixelSample, judge, state_of,
)
from simulators.migration.mover import Sessions, TransferOutcome
from simulators.quality.checks import CrossStudyChecker, check_instance, identity_rows
from simulators.quality.rules import IngestionRules

#: Every instance header of a source study (files of a DIR, or C-GET from an AE).
HeaderSource = Callable[[str, StudyInventory, Sessions], Iterable[Header]]


@dataclass
class Finding:
    """One finding on one study; ``kind`` is ``quality``, ``transfer`` or ``explained``."""

    study_uid: str
    cls: str
    detail: str
    kind: str


@dataclass
class StudyVerdict:
    """The findings of one study plus what must be recorded with them (one transaction)."""

    study_uid: str
    findings: list[Finding] = field(default_factory=list)
    explained: list[Finding] = field(default_factory=list)
    evidence: Evidence | None = None
    identities: list[tuple[tuple[str, ...], tuple[str, ...]]] = field(default_factory=list)

    @property
    def transfer(self) -> list[Finding]:
        return [f for f in self.findings if f.kind == "transfer"]

    @property
    def quality(self) -> list[Finding]:
        return [f for f in self.findings if f.kind == "quality"]

    @property
    def state(self) -> str:
        """``failed`` (the transfer failed), ``mismatch`` or ``validated``."""
        return state_of(f.cls for f in self.transfer)

    def rows(self) -> list[tuple[str, str, str]]:
        return [(f.cls, f.detail, f.kind) for f in (*self.findings, *self.explained)]


class Validator:
    """Validates studies from several worker threads (facts are read from the checkpoint)."""

    def __init__(self, rules: IngestionRules, checkpoint: Checkpoint, headers: HeaderSource,
                 *, seed: int = 0, pixel_check: PixelCheck | None = None) -> None:
        self.rules, self.checkpoint, self.headers, self.seed = rules, checkpoint, headers, seed
        self.pixel_check = pixel_check or PixelCheck()
        #: The target's negotiation answer per SOP class: asked once per run, not once
        #: per study (an archive of retired ultrasound would otherwise open thousands).
        self._answers: dict[str, str] = {}
        self._answers_lock = threading.Lock()

    def validate(self, source: StudyInventory, transfer: TransferOutcome | None,
                 sessions: Sessions) -> StudyVerdict:
        verdict = StudyVerdict(source.study_uid)
        evidence = Evidence(source.study_uid)
        files = self._read_files(source, sessions, verdict, evidence)
        target = take_inventory(sessions.target, source.study_uid)
        _compare(evidence, files, target)
        if transfer is not None:
            evidence.rejected = [[uid, status] for uid, status in transfer.rejected]
            evidence.failure = transfer.failure
            evidence.failed_subops = transfer.failed_subops
            evidence.failed_uids = list(transfer.failed_uids)
        evidence.class_answers = self._class_answers(evidence, sessions)
        if target.found:
            evidence.pixels = self._pixel_samples(source.study_uid, files, target, sessions)
        verdict.evidence = evidence
        self._apply(verdict, judge(evidence, self.checkpoint, self.rules))
        return verdict

    def rejudge(self, evidence: Evidence) -> list[Judged]:
        """The verdict on recorded evidence with everything known now (finalise)."""
        return judge(evidence, self.checkpoint, self.rules)

    def _class_answers(self, evidence: Evidence, sessions: Sessions) -> dict[str, str]:
        """For missing instances the rules exclude: would the target take their SOP
        classes? Asked in an association of its own (the target's A-ASSOCIATE-AC), so
        the report can say whether the rules or the target draw the line."""
        classes = sorted({cls for _series, cls in evidence.missing.values()
                          if cls and not self.rules.sop_class_allowed(cls)})
        with self._answers_lock:
            unknown = [cls for cls in classes if cls not in self._answers]
        if unknown:
            target = sessions.target
            try:
                answer = negotiate(target.peer, target.calling_ae, unknown,
                                   timeout=target.timeout)
            except PacsimError:  # the target would not say: "not asked" in the detail
                answer = None  # and not remembered: the next study asks again
            if answer is not None:
                with self._answers_lock:
                    self._answers.update((cls, answer.results[cls]) for cls in unknown)
        with self._answers_lock:
            return {cls: self._answers[cls] for cls in classes if cls in self._answers}

    @staticmethod
    def _apply(verdict: StudyVerdict, judged: list[Judged]) -> None:
        for item in judged:
            finding = Finding(verdict.study_uid, item.cls, item.stored_detail, item.kind)
            (verdict.explained if item.explained_by else verdict.findings).append(finding)

    def _read_files(self, source: StudyInventory, sessions: Sessions, verdict: StudyVerdict,
                    evidence: Evidence) -> dict[str, tuple[str, str]]:
        """Every source header through the per-instance checks; fills the study's own
        values and its identities; returns SOP UID -> (series UID, SOP class)."""
        own: dict[str, set[str]] = {k: set() for k in DEMOGRAPHICS}
        modalities: dict[str, set[str]] = {}
        files: dict[str, tuple[str, str]] = {}
        seen: set[str] = set()
        for header in self.headers(source.study_uid, source, sessions):
            ds = header.dataset
            # the checks judge the bytes as stored: they must see the data set first
            for finding in check_instance(ds, self.rules, transfer_syntax=header.transfer_syntax):
                if finding.cls not in seen:
                    seen.add(finding.cls)
                    verdict.findings.append(Finding(source.study_uid, finding.cls,
                                                    finding.detail, "quality"))
            for keyword in DEMOGRAPHICS:
                own[keyword].add(text(ds, keyword))
            # not judged: the validation report names each study by its accession
            own.setdefault("AccessionNumber", set()).add(text(ds, "AccessionNumber"))
            series_uid, sop_uid = text(ds, "SeriesInstanceUID"), text(ds, "SOPInstanceUID")
            modalities.setdefault(series_uid, set()).add(text(ds, "Modality"))
            files[sop_uid] = (series_uid, text(ds, "SOPClassUID"))
            verdict.identities.append(identity_rows(
                source.study_uid, sop_uid, text(ds, "PatientID"), text(ds, "PatientName"),
                text(ds, "PatientBirthDate"), text(ds, "StudyDate"), text(ds, "PatientSex")))
        evidence.own = {k: sorted(v) for k, v in own.items()}
        evidence.series = {uid: {"source": sorted(mods), "target": None}
                           for uid, mods in modalities.items()}
        return files

    def _pixel_samples(self, study_uid: str, files: dict[str, tuple[str, str]],
                       target: StudyInventory, sessions: Sessions) -> list[PixelSample]:
        """Pixel values of the checked instances on both sides (``--pixel-check``)."""
        common = sorted(uid for uid in set(files) & set(target.instances)
                        if self.rules.sop_class_allowed(files[uid][1]))
        if not common or self.pixel_check.mode == "none":
            return []
        if self.pixel_check.mode == "all":
            classes = sorted({files[uid][1] for uid in common})
            before = study_digests(sessions.source, study_uid, classes)
            after = study_digests(sessions.target, study_uid, classes)
            return [PixelSample(uid, *_pair(before.get(uid), after.get(uid))) for uid in common]
        chosen = random.Random(f"{self.seed}:{study_uid}").sample(
            common, min(self.pixel_check.count, len(common)))
        samples = []
        for sop_uid in sorted(chosen):
            series_uid, sop_class = files[sop_uid]
            before = pixel_digest(sessions.source, study_uid, series_uid, sop_uid, sop_class)
            after = pixel_digest(sessions.target, study_uid, target.instances[sop_uid][0],
                                 sop_uid, sop_class)
            samples.append(PixelSample(sop_uid, *_pair(before, after)))
        return samples

    @staticmethod
    def cross_conflicts(checkpoint: Checkpoint):  # noqa: ANN205 - an iterator of Conflict
        """The cross-study conflicts over every identity recorded so far."""
        with CrossStudyChecker(checkpoint.path, attach=True) as checker:
            return list(checker.conflicts())


@dataclass(frozen=True)
class PixelCheck:
    """Which instances' pixel values are compared: ``sample`` (``count`` per study,
    seeded), ``all`` (every instance: a study-level C-GET from both sides) or ``none``.

    Why a sample by default: fetching every instance back from the target doubles the
    traffic of the migration. A systematic pixel error (a target that recompresses
    lossily) shows on any sample; one damaged instance among hundreds needs ``all``.
    """

    mode: str = "sample"
    count: int = 1

    def __str__(self) -> str:
        return f"sample {self.count}" if self.mode == "sample" else self.mode

    @classmethod
    def parse(cls, words: Sequence[str]) -> "PixelCheck":
        """``all``, ``none`` or ``sample N`` (N >= 1); ConfigError naming the option."""
        text = " ".join(words).strip()
        parts = text.split()
        if parts in (["all"], ["none"]):
            return cls(parts[0])
        if len(parts) == 2 and parts[0] == "sample" and parts[1].isdigit() and int(parts[1]) > 0:
            return cls("sample", int(parts[1]))
        raise ConfigError(f"--pixel-check: expected all, none or 'sample N', got {text!r}",
                          field="pixel-check")


def _pair(before: tuple[str, str] | None, after: tuple[str, str] | None
          ) -> tuple[str | None, str | None, str, str]:
    return (before[0] if before else None, after[0] if after else None,
            before[1] if before else "", after[1] if after else "")


def study_digests(session: QrClient, study_uid: str, sop_classes: list[str]
                  ) -> dict[str, tuple[str, str]]:
    """SOP UID -> (pixel digest, transfer syntax) of every instance *of this study* a
    study-level C-GET delivers."""
    found: dict[str, tuple[str, str]] = {}
    for item in session.get({"StudyInstanceUID": study_uid}, sop_classes, level="STUDY",
                            keep=True).instances:
        digest = _copy_of_study([item], study_uid, item.sop_instance)
        if digest is not None:
            found[item.sop_instance] = digest
    return found


def _compare(evidence: Evidence, files: dict[str, tuple[str, str]],
             target: StudyInventory) -> None:
    """Set differences between the files and the target's IMAGE-level answer."""
    evidence.found = target.found
    evidence.source_count = len(files)
    evidence.target_count = len(target.instances)
    evidence.target_demographics = target.answers
    for uid, sides in evidence.series.items():
        sides["target"] = target.series.get(uid)
    evidence.extra_series = sorted(set(target.series) - set(evidence.series))
    evidence.missing = {uid: list(files[uid]) for uid in sorted(set(files) - set(target.instances))}
    evidence.extra = sorted(set(target.instances) - set(files))


def pixel_digest(session: QrClient, study_uid: str, series_uid: str, sop_uid: str,
                 sop_class: str) -> tuple[str, str] | None:
    """(digest of the pixel values, transfer syntax) of one instance *of this study* as
    the peer returns it by C-GET; None when it did not deliver it.

    Why the study is checked: an archive holding the same SOP Instance UID in two
    studies may return either copy, or refuse the IMAGE-level retrieve as ambiguous;
    the one compared is the one under ``study_uid`` (by a SERIES retrieve if need be).
    Why decoded values: a target may legitimately hold a lossless recompression, whose
    bytes differ while the pixels do not; when decoding is impossible (no codec), the
    stored bytes are digested, so a different syntax then shows as a difference.
    """
    match = {"StudyInstanceUID": study_uid, "SeriesInstanceUID": series_uid,
             "SOPInstanceUID": sop_uid}
    found = _copy_of_study(session.get(match, [sop_class], level="IMAGE", keep=True).instances,
                           study_uid, sop_uid)
    if found is None:
        # An archive holding the SOP UID twice may fail the IMAGE-level retrieve as
        # ambiguous (Orthanc answers 0xC000) while the series retrieve delivers it.
        del match["SOPInstanceUID"]
        found = _copy_of_study(session.get(match, [sop_class], level="SERIES",
                                           keep=True).instances, study_uid, sop_uid)
    return found


def _copy_of_study(received, study_uid: str, sop_uid: str  # noqa: ANN001
                   ) -> tuple[str, str] | None:
    for item in received:
        if item.sop_instance != sop_uid:
            continue
        ds = decode_dataset(BytesIO(item.data), item.transfer_syntax)
        if text(ds, "StudyInstanceUID") not in (study_uid, ""):
            continue
        return _digest(ds, str(item.transfer_syntax)), str(item.transfer_syntax)
    return None


def _digest(ds, syntax: str) -> str:  # noqa: ANN001 - a pydicom Dataset
    if ds.get("PixelData") is None:
        return "absent"
    if "TransferSyntaxUID" not in getattr(ds, "file_meta", {}):
        # a data set decoded from a C-GET has no file meta; the decoder needs the syntax
        ds.file_meta = FileMetaDataset()
        ds.file_meta.TransferSyntaxUID = syntax
    try:
        return hashlib.sha256(ds.pixel_array.tobytes()).hexdigest()
    except Exception:  # noqa: BLE001 - no codec for it: compare what is stored
        return "raw:" + hashlib.sha256(bytes(ds.PixelData)).hexdigest()


__all__ = ["Validator", "StudyVerdict", "Finding", "TRANSFER_CLASSES", "pixel_digest",
           "study_digests", "PixelCheck", "HeaderSource"]
