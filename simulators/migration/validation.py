"""Validation of one migrated study: source vs target, plus the source's data quality.

Transfer checks compare what the legacy and the target *answer over the wire*
(C-FIND study/series/image, C-GET of one sampled instance from each side):
``missing-study``, ``demographics`` (name, ID, birth date, sex), ``modality``,
``series-count``, ``instance-count``, ``sop-uid-set``, ``pixel-hash``, and
``rejected`` (the target refused a C-STORE). Data-quality checks run every
instance header of the source through the seeder's ``checks.check_instance`` and
``checks.CrossStudyChecker`` (classes named as in the manifest).

Why some transfer mismatches are *explained*, not reported as corruption: an
archive's patient row keeps the first instance's demographics, so when the legacy
holds two names for one PatientID, the legacy and the target may each show a
different one of them depending on arrival order. A demographic value on the
target that some source file of the same patient carries was not invented by the
migration: it is the source's conflict showing through. Such a mismatch is recorded
as explained (and, when the study itself carries the conflict, reported under that
data-quality class); only a value no source file carries - a morph gone wrong, a
corruption - counts against the rollback threshold.
"""

from __future__ import annotations

import ast
import hashlib
import random
import re
import threading
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import Callable, Iterable

from simulators.dicom.fast.files import decode_dataset
from simulators.migration.checkpoint import Checkpoint
from simulators.quality.checks import CrossStudyChecker, check_instance
from simulators.migration.headers import Header
from simulators.migration.inventory import DEMOGRAPHICS, StudyInventory, take_inventory, text
from simulators.migration.mover import Sessions, TransferOutcome
from simulators.dicom.qrscu import QrClient
from simulators.quality.rules import IngestionRules

TRANSFER_CLASSES = ("missing-study", "demographics", "modality", "series-count",
                    "instance-count", "sop-uid-set", "pixel-hash", "rejected")
#: Data-quality classes whose presence on a study explains a transfer mismatch on it.
EXPLAINED_BY: dict[str, tuple[str, ...]] = {
    # a target that refuses a retired SOP class refuses the association of the C-MOVE;
    # a study whose only instances are duplicates of another study's has nothing to show
    "missing-study": ("retired-sop-class", "duplicate-sop-uid"),
    "demographics": ("patient-name-conflict", "birth-date-conflict", "split-study"),
    "modality": ("wrong-modality", "missing-modality"),
    "series-count": ("split-study", "duplicate-sop-uid"),
    "instance-count": ("duplicate-sop-uid", "retired-sop-class"),
    "pixel-hash": ("duplicate-sop-uid",),
    "sop-uid-set": ("duplicate-sop-uid", "retired-sop-class"),
    "rejected": ("duplicate-sop-uid", "retired-sop-class", "odd-charset", "invalid-vr-value",
                 "missing-type2"),
}
_CHANGE = re.compile(r"(\w+): ('(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\") -> "
                     r"('(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")")

#: Every instance header of a source study (files of a DIR, or C-GET from an AE).
HeaderSource = Callable[[str, StudyInventory, Sessions], Iterable[Header]]


@dataclass
class Finding:
    """One finding on one study; ``kind`` is ``quality`` or ``transfer``."""

    study_uid: str
    cls: str
    detail: str
    kind: str


@dataclass
class StudyVerdict:
    study_uid: str
    findings: list[Finding] = field(default_factory=list)
    explained: list[Finding] = field(default_factory=list)

    @property
    def transfer(self) -> list[Finding]:
        return [f for f in self.findings if f.kind == "transfer"]

    @property
    def quality(self) -> list[Finding]:
        return [f for f in self.findings if f.kind == "quality"]


class Validator:
    """Validates studies from several worker threads (the cross-study state is locked)."""

    def __init__(self, rules: IngestionRules, checkpoint: Checkpoint, cross_db: Path,
                 headers: HeaderSource, *, seed: int = 0) -> None:
        self.rules, self.checkpoint, self.headers, self.seed = rules, checkpoint, headers, seed
        self.cross = CrossStudyChecker(cross_db)
        self._lock = threading.Lock()
        #: Identities read by worker threads, fed to the checker by the owning thread
        #: (its SQLite connection belongs to the thread that created it).
        self._identities: list[tuple[str, ...]] = []

    # ------------------------------------------------------------------ one study
    def validate(self, source: StudyInventory, transfer: TransferOutcome | None,
                 sessions: Sessions) -> StudyVerdict:
        verdict = StudyVerdict(source.study_uid)
        values = self._quality(source, sessions, verdict)
        target = take_inventory(sessions.target, source.study_uid)
        add = lambda cls, detail: verdict.findings.append(  # noqa: E731
            Finding(source.study_uid, cls, detail, "transfer"))
        if transfer is not None and transfer.rejected:
            listed = ", ".join(f"{uid} (0x{status:04X})" for uid, status in transfer.rejected[:5])
            add("rejected", f"target refused {len(transfer.rejected)} object(s): {listed}")
        if not target.found:
            add("missing-study", f"target does not know the study ({len(source.instances)} "
                                 "instance(s) on the source)")
        else:
            self._compare(source, target, sessions, add)
        self._explain(verdict, values)
        return verdict

    def _quality(self, source: StudyInventory, sessions: Sessions,
                 verdict: StudyVerdict) -> dict[str, set[str]]:
        """Every source header through the per-instance checks and the cross-study state;
        returns the demographic values the study's files carry."""
        values: dict[str, set[str]] = {k: set() for k in DEMOGRAPHICS}
        carried: set[tuple[str, str, str]] = set()
        seen: set[tuple[str, str]] = set()
        identities = []
        for header in self.headers(source.study_uid, source, sessions):
            ds = header.dataset
            # the checks judge the bytes as stored: they must see the data set first
            for finding in check_instance(ds, self.rules, transfer_syntax=header.transfer_syntax):
                if (finding.cls, finding.study_uid) not in seen:
                    seen.add((finding.cls, finding.study_uid))
                    verdict.findings.append(Finding(finding.study_uid or source.study_uid,
                                                    finding.cls, finding.detail, "quality"))
            for keyword in DEMOGRAPHICS:
                values[keyword].add(text(ds, keyword))
                carried.add((text(ds, "PatientID"), keyword, text(ds, keyword)))
            identities.append(tuple(text(ds, k) for k in (
                "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "PatientID",
                "PatientName", "PatientBirthDate", "StudyDate")))
        with self._lock:
            self._identities.extend(identities)
        self.checkpoint.add_patient_values(carried)
        return values

    def _compare(self, source: StudyInventory, target: StudyInventory, sessions: Sessions,
                 add: Callable[[str, str], None]) -> None:
        changes = {k: (source.demographics.get(k, ""), target.demographics.get(k, ""))
                   for k in DEMOGRAPHICS
                   if source.demographics.get(k, "") != target.demographics.get(k, "")}
        if changes:
            add("demographics", describe_changes(changes))
        modality_changes = [f"series {uid[-12:]}: {source.series[uid]!r} -> {target.series[uid]!r}"
                            for uid in source.series
                            if uid in target.series and source.series[uid] != target.series[uid]]
        if modality_changes:
            add("modality", "; ".join(modality_changes[:5]))
        if len(source.series) != len(target.series):
            add("series-count", f"source {len(source.series)}, target {len(target.series)}")
        if len(source.instances) != len(target.instances):
            add("instance-count", f"source {len(source.instances)}, target {len(target.instances)}")
        missing = sorted(set(source.instances) - set(target.instances))
        extra = sorted(set(target.instances) - set(source.instances))
        if missing or extra:
            add("sop-uid-set", f"{len(missing)} missing on the target {missing[:3]}, "
                               f"{len(extra)} unexpected {extra[:3]}")
        common = sorted(uid for uid in set(source.instances) & set(target.instances)
                        if self.rules.sop_class_allowed(source.instances[uid][1]))
        if common:
            sop_uid = random.Random(f"{self.seed}:{source.study_uid}").choice(common)
            series_uid, sop_class = source.instances[sop_uid]
            before = pixel_hash(sessions.source, source.study_uid, series_uid, sop_uid, sop_class)
            if before is None:  # the legacy cannot deliver it: nothing to compare against
                return
            after = pixel_hash(sessions.target, source.study_uid,
                               target.instances[sop_uid][0], sop_uid, sop_class)
            if before != after:
                add("pixel-hash", f"instance {sop_uid}: source {before[:16]}, target "
                                  f"{after[:16] if after else 'did not return it'}")

    def _explain(self, verdict: StudyVerdict, values: dict[str, set[str]]) -> None:
        """Move transfer mismatches the source's own defects account for to ``explained``."""
        quality = {f.cls for f in verdict.quality}
        kept: list[Finding] = []
        for finding in verdict.findings:
            if finding.kind == "transfer" and (
                    quality & set(EXPLAINED_BY.get(finding.cls, ()))
                    or finding.cls == "demographics"
                    and source_carries(finding, self.checkpoint, values)):
                verdict.explained.append(Finding(finding.study_uid, finding.cls, finding.detail,
                                                 "explained"))
            else:
                kept.append(finding)
        verdict.findings = kept

    def flush_identities(self) -> None:
        """Feed what the workers read to the cross-study checker (call from the owning thread)."""
        with self._lock:
            pending, self._identities = self._identities, []
        for study, series, sop, patient, name, birth, date in pending:
            self.cross.add_instance(study, series, sop, patient, name, birth, study_date=date)

    def cross_findings(self) -> list[Finding]:
        """Cross-study findings (name/birth-date conflicts, duplicates, split studies)."""
        self.flush_identities()
        return [Finding(f.study_uid, f.cls, f.detail, "quality") for f in self.cross.findings()]

    def close(self) -> None:
        self.cross.close()


def describe_changes(changes: dict[str, tuple[str, str]]) -> str:
    """``PatientID: 'A' -> 'LEG-A'; ...`` (read back by :func:`parse_changes`)."""
    return "; ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in changes.items())


def parse_changes(detail: str) -> dict[str, tuple[str, str]]:
    changes = {}
    for match in _CHANGE.finditer(detail):
        try:
            changes[match.group(1)] = (ast.literal_eval(match.group(2)),
                                       ast.literal_eval(match.group(3)))
        except (ValueError, SyntaxError):
            continue
    return changes


def source_carries(finding: Finding, checkpoint: Checkpoint,
                   own: dict[str, set[str]] | None = None) -> bool:
    """True when every target value of a demographics mismatch is one some source file
    carries: this study's own files (``own``), or any file of the patient IDs involved."""
    changes = parse_changes(finding.detail)
    if not changes:
        return False
    patients = {checkpoint.patient_of(finding.study_uid), *(own or {}).get("PatientID", ())}
    if "PatientID" in changes:
        patients.update(changes["PatientID"])
    for keyword, (_, target_value) in changes.items():
        if own and target_value in own.get(keyword, set()):
            continue
        if not checkpoint.carries(patients, keyword, target_value):
            return False
    return True


def pixel_hash(session: QrClient, study_uid: str, series_uid: str, sop_uid: str,
               sop_class: str) -> str | None:
    """SHA-256 of one instance's PixelData as fetched by C-GET ('absent' without pixel
    data); None when the peer did not deliver the instance."""
    received = session.get({"StudyInstanceUID": study_uid, "SeriesInstanceUID": series_uid,
                            "SOPInstanceUID": sop_uid}, [sop_class], level="IMAGE",
                           keep=True).instances
    if not received:
        return None
    ds = decode_dataset(BytesIO(received[0].data), received[0].transfer_syntax)
    pixels = ds.get("PixelData")
    if pixels is None:
        return "absent"
    return hashlib.sha256(bytes(pixels)).hexdigest()


__all__ = ["Validator", "StudyVerdict", "Finding", "TRANSFER_CLASSES", "EXPLAINED_BY",
           "pixel_hash", "HeaderSource", "source_carries", "describe_changes", "parse_changes"]
