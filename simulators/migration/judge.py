"""The verdict on one migrated study, from evidence: what the source's files hold and
what the target itself answered.

Why evidence first and judgement after: a verdict is a claim a migration lead signs,
so it must rest on the target's own answer, and an excuse ("the source's defect
explains this difference") must be *proven* to explain exactly that difference. The
validator therefore records, per study, the facts it observed (:class:`Evidence`:
the values the study's files carry, the target's C-FIND answer at STUDY, SERIES and
IMAGE level, the target's C-STORE statuses, the pixel checks) in the checkpoint, in
the same transaction as the study's state; :func:`judge` turns evidence into
findings. Judging again later (when more of the archive has been seen) can only add
proofs, never remove a difference, so a preliminary verdict is never kinder than the
final one, and the final one depends only on the evidence, not on the order studies
were migrated.

The excuses, each proven on the one difference it explains (nothing else is excused):

* **Patient-level value from another study of the same patient** (archives keep one
  patient record per Patient ID): a target PatientName / PatientBirthDate that this
  study's files do not carry, but another source file *of the same Patient ID* does,
  is explained by ``patient-name-conflict`` / ``birth-date-conflict`` (the patient
  provably has two values); an empty value another file of the patient lacks, or a
  value this study's files lack and another file of the patient carries, by
  ``missing-type2``. Never a Patient ID change: the target's Patient ID must be
  one this study's own files carry (two of them for a split study).
* **Duplicate SOP Instance UID**: an instance missing under this study is explained
  by ``duplicate-sop-uid`` only when another source study holds the same SOP Instance
  UID *and the target's own answer for that study lists it*.
* **Excluded by the rules**: the ingestion rules say which SOP classes the target
  stores; instances of other classes are never sent (the mover skips them), so their
  absence is explained by ``retired-sop-class`` / ``disallowed-sop-class``. The
  detail carries the target's own negotiation answer for that class, so a lead sees
  whether the target or only the rules draw the line.

A study whose transfer failed gets ``transfer-failed``. The one failure that can be
excused is a C-MOVE whose failed sub-operations are exactly the duplicated instances
the target holds under another study (same count, every UID the legacy listed among
them): the target refused a second copy of a SOP Instance UID it already holds.
Nothing excuses a C-GET the legacy could not serve, a broken association, or a
failure status of the retrieve itself.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Iterable, Protocol

from pydicom.uid import UID

from simulators.quality import classes as C
from simulators.quality.rules import IngestionRules

TRANSFER_CLASSES = ("missing-study", "demographics", "modality", "series-count",
                    "instance-count", "sop-uid-set", "pixel-hash", "rejected",
                    "transfer-failed")
#: Demographic attributes compared at STUDY level, and the class whose patient-wide
#: conflict may explain a value taken from another study of the same patient.
PATIENT_SCOPED = {"PatientName": (C.PATIENT_NAME_CONFLICT, "patient_name"),
                  "PatientBirthDate": (C.BIRTH_DATE_CONFLICT, "birth_date"),
                  "PatientSex": ("", "sex")}
DEMOGRAPHICS = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex")


@dataclass
class PixelSample:
    """One instance's pixel digest on each side (None: that side did not deliver it)."""

    sop_uid: str
    source: str | None
    target: str | None
    source_syntax: str = ""
    target_syntax: str = ""


@dataclass
class Evidence:
    """What one study's validation observed; everything :func:`judge` needs of it.

    ``own`` holds the values of each demographic attribute the study's files carry;
    ``series`` maps each series UID to the Modality values its files carry (source)
    and the value the target answered (``None``: the target does not list the series);
    ``missing`` maps each SOP Instance UID the files hold and the target does not list
    to ``[series UID, SOP class]``; ``extra`` is what the target lists and no file holds.
    """

    study_uid: str
    found: bool = False
    target_demographics: list[dict[str, str]] = field(default_factory=list)
    own: dict[str, list[str]] = field(default_factory=dict)
    series: dict[str, dict[str, object]] = field(default_factory=dict)
    extra_series: list[str] = field(default_factory=list)
    missing: dict[str, list[str]] = field(default_factory=dict)
    extra: list[str] = field(default_factory=list)
    source_count: int = 0
    target_count: int = 0
    rejected: list[list[object]] = field(default_factory=list)
    #: SOP classes of excluded missing instances -> the target's own A-ASSOCIATE-AC
    #: answer when asked (``accepted`` or its reason); absent when it could not be asked.
    class_answers: dict[str, str] = field(default_factory=dict)
    failure: str = ""
    failed_subops: int = 0
    failed_uids: list[str] = field(default_factory=list)
    pixels: list[PixelSample] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> "Evidence":
        data = json.loads(text)
        pixels = [PixelSample(**item) for item in data.pop("pixels", [])]
        return cls(**data, pixels=pixels)


class Facts(Protocol):
    """What the judge may ask about the rest of the source and the target's answers."""

    def patient_values(self, patient_id: str, column: str) -> set[str]:
        """Values of ``column`` (patient_name, birth_date) any source file of the ID carries."""

    def holders(self, sop_uid: str) -> list[str]:
        """Source studies holding a SOP Instance UID."""

    def evidence(self, study_uid: str) -> Evidence | None:
        """The recorded evidence of another study (None: not validated in this run)."""


@dataclass(frozen=True)
class Judged:
    """One finding of the judge: a difference (``explained_by`` empty) or an excused one."""

    cls: str
    detail: str
    explained_by: str = ""

    @property
    def kind(self) -> str:
        return "explained" if self.explained_by else "transfer"

    @property
    def stored_detail(self) -> str:
        """How the checkpoint keeps it: an excused difference names its class first."""
        return f"[by {self.explained_by}] {self.detail}" if self.explained_by else self.detail


def judge(evidence: Evidence, facts: Facts, rules: IngestionRules) -> list[Judged]:
    """Every transfer difference of one study, each either unexcused or proven-excused."""
    out: list[Judged] = []
    excuses = {sop: _missing_excuse(evidence, sop, cls, facts, rules)
               for sop, (_series, cls) in evidence.missing.items()}
    if evidence.failure:
        out.append(_judge_failure(evidence, excuses))
    _judge_instances(evidence, excuses, out)
    _judge_rejected(evidence, excuses, out)
    if evidence.found:
        _judge_series(evidence, excuses, out)
        _judge_demographics(evidence, facts, out)
        _judge_pixels(evidence, out)
    return _one_per_class(out)


def state_of(unexcused: Iterable[str]) -> str:
    """A study's state from the classes of its unexcused transfer findings: ``failed``
    when its transfer failed, ``mismatch`` when anything else differs, else ``validated``."""
    classes = set(unexcused)
    if "transfer-failed" in classes:
        return "failed"
    return "mismatch" if classes else "validated"


def _missing_excuse(evidence: Evidence, sop: str, sop_class: str, facts: Facts,
                    rules: IngestionRules) -> tuple[str, str] | None:
    """(class, why) when the target's not listing ``sop`` under this study is proven."""
    for other in facts.holders(sop):
        if other == evidence.study_uid:
            continue
        seen = facts.evidence(other)
        if seen is not None and seen.found and sop not in seen.missing:
            return (C.DUPLICATE_SOP_UID,
                    f"{sop} is also in study {other}, where the target lists it")
    if not sop_class or rules.sop_class_allowed(sop_class):
        return None
    answer = evidence.class_answers.get(sop_class)
    target_says = ("the target refuses it too: " + answer if answer and answer != "accepted"
                   else "note: the target's own negotiation accepts it" if answer
                   else "the target was not asked")
    return (_refusal_class(sop_class),
            f"{sop} ({UID(sop_class).name}) not sent: the ingestion rules exclude its SOP "
            f"class ({target_says})")


def _judge_failure(evidence: Evidence, excuses: dict[str, tuple[str, str] | None]) -> Judged:
    """A failed transfer; excused only when its failed C-MOVE sub-operations are
    exactly the duplicated instances the target holds under another study (the
    target refused the second copy of a SOP Instance UID)."""
    held_elsewhere = {sop for sop, why in excuses.items()
                      if why is not None and why[0] == C.DUPLICATE_SOP_UID}
    exact = (evidence.failed_subops > 0 and evidence.failed_subops == len(held_elsewhere)
             and all(why is not None for why in excuses.values())
             and set(evidence.failed_uids) <= held_elsewhere)
    if exact:
        return Judged("transfer-failed", f"{evidence.failure} - exactly the "
                                         f"{len(held_elsewhere)} duplicated instance(s) the "
                                         "target holds under another study",
                      C.DUPLICATE_SOP_UID)
    return Judged("transfer-failed", evidence.failure)


def _refusal_class(sop_class: str) -> str:
    return C.RETIRED_SOP_CLASS if UID(sop_class).is_retired else C.DISALLOWED_SOP_CLASS


def _judge_instances(evidence: Evidence, excuses: dict[str, tuple[str, str] | None],
                     out: list[Judged]) -> None:
    lost = sorted(sop for sop, why in excuses.items() if why is None)
    excused = {sop: why for sop, why in excuses.items() if why is not None}
    by_class: dict[str, list[str]] = {}
    for sop, (cls, why) in sorted(excused.items()):
        by_class.setdefault(cls, []).append(why)
    if not evidence.found:
        if lost or not excused:
            out.append(Judged("missing-study", f"the target does not know the study "
                                               f"({evidence.source_count} instance(s) in the "
                                               "source's files)"))
        else:  # every instance excused: name every class that excused one
            whys = [why for cls in sorted(by_class) for why in by_class[cls]]
            out.append(Judged("missing-study", "; ".join(whys[:3]), "+".join(sorted(by_class))))
        return
    for cls, whys in sorted(by_class.items()):
        out.append(Judged("sop-uid-set", f"{len(whys)} instance(s) not under this study on "
                                         f"the target: {'; '.join(whys[:3])}", cls))
    if lost or evidence.extra:
        out.append(Judged("sop-uid-set", f"{len(lost)} missing on the target {lost[:3]}, "
                                         f"{len(evidence.extra)} unexpected "
                                         f"{sorted(evidence.extra)[:3]}"))
    expected = evidence.source_count - len(excused)
    if evidence.target_count != expected:
        out.append(Judged("instance-count", f"source files {evidence.source_count}"
                                            f"{f' ({len(excused)} excused)' if excused else ''}, "
                                            f"target {evidence.target_count}"))


def _judge_rejected(evidence: Evidence, excuses: dict[str, tuple[str, str] | None],
                    out: list[Judged]) -> None:
    """Refusals not proven to be what the rules predict (or a duplicate held elsewhere)."""
    unexcused = []
    for uid, status in evidence.rejected:
        sop, code = str(uid), int(status)  # type: ignore[call-overload]
        why = excuses.get(sop)
        if why is None and sop not in evidence.missing:
            unexcused.append(f"{sop} (0x{code:04X}, yet listed by the target)")
        elif why is None:
            unexcused.append(f"{sop} (0x{code:04X})")
    if unexcused:
        out.append(Judged("rejected", f"the target refused {len(unexcused)} object(s): "
                                      f"{', '.join(unexcused[:5])}"))


def _judge_series(evidence: Evidence, excuses: dict[str, tuple[str, str] | None],
                  out: list[Judged]) -> None:
    changed, gone = [], []
    for uid, sides in sorted(evidence.series.items()):
        source = [str(v) for v in sides.get("source", [])]  # type: ignore[union-attr]
        target = sides.get("target")
        if target is None:
            own = [sop for sop, (series, _cls) in evidence.missing.items() if series == uid]
            if not own or any(excuses.get(sop) is None for sop in own):
                gone.append(uid)
            continue
        if str(target) not in source:
            changed.append(f"series {uid[-12:]}: files {'/'.join(map(repr, source))} -> "
                           f"target {str(target)!r}")
    if changed:
        out.append(Judged("modality", "; ".join(changed[:5])))
    if gone or evidence.extra_series:
        out.append(Judged("series-count", f"{len(gone)} series missing on the target "
                                          f"{[u[-12:] for u in gone[:3]]}, "
                                          f"{len(evidence.extra_series)} unexpected"))


def _judge_demographics(evidence: Evidence, facts: Facts, out: list[Judged]) -> None:
    own_ids = set(evidence.own.get("PatientID", []))
    lost: list[str] = []
    explained: dict[str, list[str]] = {}
    for answer in evidence.target_demographics:
        target_id = answer.get("PatientID", "")
        for keyword in DEMOGRAPHICS:
            value, own = answer.get(keyword, ""), set(evidence.own.get(keyword, []))
            if value in own:
                continue
            change = f"{keyword}: files {'/'.join(map(repr, sorted(own)))} -> target {value!r}"
            scoped = PATIENT_SCOPED.get(keyword)
            # the value of another file of the same patient: its conflict class, or,
            # for an empty value, the other file's missing Type 2 attribute
            if not scoped or target_id not in own_ids:
                cls = ""
            elif not value or own <= {""}:
                cls = C.MISSING_TYPE2  # the other file, or this study's, lacks the value
            else:
                cls = scoped[0]
            if cls and value in facts.patient_values(target_id, scoped[1]):  # type: ignore[index]
                what = "lacks it" if not value else "carries it"
                explained.setdefault(cls, []).append(
                    f"{change}; another file of PatientID {target_id} {what}")
            else:
                lost.append(change)
    if lost:
        out.append(Judged("demographics", "; ".join(dict.fromkeys(lost))))
    for cls, changes in sorted(explained.items()):
        out.append(Judged("demographics", "; ".join(dict.fromkeys(changes)), cls))


def _judge_pixels(evidence: Evidence, out: list[Judged]) -> None:
    """Every checked instance whose pixel values differ, or that the target did not
    return; an instance the source did not deliver has nothing to compare against."""
    differences = []
    for sample in evidence.pixels:
        if sample.source is None:
            continue
        if sample.target is None:
            differences.append(f"instance {sample.sop_uid}: the target did not return it "
                               "by C-GET")
        elif sample.source != sample.target:
            syntaxes = (f" (transfer syntax {sample.source_syntax} -> {sample.target_syntax})"
                        if sample.source_syntax != sample.target_syntax else "")
            differences.append(f"instance {sample.sop_uid}: source {sample.source[:16]}, "
                               f"target {sample.target[:16]}{syntaxes}")
    if differences:
        checked = sum(1 for sample in evidence.pixels if sample.source is not None)
        out.append(Judged("pixel-hash", f"{len(differences)} of {checked} checked "
                                        f"instance(s) differ: {'; '.join(differences[:3])}"))


def _one_per_class(found: list[Judged]) -> list[Judged]:
    """The checkpoint keeps one finding per (study, class, kind): merge details."""
    merged: dict[tuple[str, str], Judged] = {}
    for item in found:
        key = (item.cls, item.kind)
        if key in merged:
            first = merged[key]
            by = first.explained_by if first.explained_by == item.explained_by else \
                "+".join(sorted({first.explained_by, item.explained_by}))
            merged[key] = Judged(item.cls, f"{first.detail}; {item.detail}", by)
        else:
            merged[key] = item
    return list(merged.values())


__all__ = ["Evidence", "PixelSample", "Facts", "Judged", "judge", "state_of", "TRANSFER_CLASSES",
           "DEMOGRAPHICS"]
