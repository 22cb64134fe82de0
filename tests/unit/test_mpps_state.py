"""The MPPS SCP state machine: every status PS3.4 F.7.2 prescribes, and no side effects
on refusal (the stored instance and the callbacks stay untouched)."""

from __future__ import annotations

import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from simulators.dicom.mpps import (
    COMPLETED, DISCONTINUED, DUPLICATE_SOP_INSTANCE, ERROR_ID_NO_LONGER_UPDATABLE, IN_PROGRESS,
    INVALID_ATTRIBUTE_VALUE, MISSING_ATTRIBUTE, MISSING_ATTRIBUTE_VALUE, NO_SUCH_SOP_INSTANCE,
    PROCESSING_FAILURE, SUCCESS, MppsInstance, MppsManager,
)

UID = "1.2.826.0.1.3680043.10.999.1"


def create_attrs(status: str = IN_PROGRESS, accession: str = "ACC1") -> Dataset:
    ds = Dataset()
    ssas = Dataset()
    ssas.StudyInstanceUID = "1.2.826.0.1.3680043.10.999.2"
    ssas.AccessionNumber = accession
    ssas.RequestedProcedureID = "RP1"
    ssas.ScheduledProcedureStepID = "SPS1"
    ds.ScheduledStepAttributesSequence = Sequence([ssas])
    ds.PatientName = "DOE^JANE"
    ds.PatientID = "PID1"
    ds.PerformedProcedureStepID = "PPS1"
    ds.PerformedStationAETitle = "CT01"
    ds.PerformedProcedureStepStartDate = "20260115"
    ds.PerformedProcedureStepStartTime = "093000"
    ds.PerformedProcedureStepStatus = status
    ds.Modality = "CT"
    ds.PerformedSeriesSequence = Sequence()
    return ds


def completion(series: bool = True) -> Dataset:
    ds = Dataset()
    ds.PerformedProcedureStepStatus = COMPLETED
    ds.PerformedProcedureStepEndDate = "20260115"
    ds.PerformedProcedureStepEndTime = "100000"
    item = Dataset()
    item.SeriesInstanceUID = "1.2.826.0.1.3680043.10.999.3"
    item.ProtocolName = "CHEST"
    item.ReferencedImageSequence = Sequence()
    ds.PerformedSeriesSequence = Sequence([item] if series else [])
    return ds


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def manager(self, **kwargs: object) -> MppsManager:
        return MppsManager(
            on_in_progress=lambda i: self.calls.append((IN_PROGRESS, i.sop_instance_uid)),
            on_completed=lambda i: self.calls.append((COMPLETED, i.sop_instance_uid)),
            on_discontinued=lambda i: self.calls.append((DISCONTINUED, i.sop_instance_uid)),
            on_updated=lambda i: self.calls.append(("updated", i.sop_instance_uid)),
            **kwargs)  # type: ignore[arg-type]


def test_create_then_complete() -> None:
    rec = Recorder()
    mgr = rec.manager()
    assert mgr.n_create(UID, create_attrs()).status == SUCCESS
    assert mgr.n_set(UID, completion()).status == SUCCESS
    instance = mgr.get(UID)
    assert instance is not None and instance.status == COMPLETED
    assert instance.references[0].accession == "ACC1"
    assert rec.calls == [(IN_PROGRESS, UID), (COMPLETED, UID)]


def test_create_generates_uid_when_scu_sends_none() -> None:
    result = MppsManager().n_create(None, create_attrs())
    assert result.ok and result.sop_instance_uid.startswith("1.2.")


def test_create_must_be_in_progress() -> None:
    rec = Recorder()
    mgr = rec.manager()
    result = mgr.n_create(UID, create_attrs(status=COMPLETED))
    assert result.status == INVALID_ATTRIBUTE_VALUE == 0x0106
    assert result.offending == (0x00400252,)
    assert mgr.instances() == [] and rec.calls == []


def test_create_missing_type1_is_0120_and_empty_is_0121() -> None:
    mgr = MppsManager()
    for keyword in ("ScheduledStepAttributesSequence", "PerformedProcedureStepID",
                    "PerformedStationAETitle", "PerformedProcedureStepStartDate",
                    "PerformedProcedureStepStartTime", "PerformedProcedureStepStatus", "Modality"):
        attrs = create_attrs()
        delattr(attrs, keyword)
        assert mgr.n_create(UID, attrs).status == MISSING_ATTRIBUTE == 0x0120, keyword
    attrs = create_attrs()
    attrs.PerformedStationAETitle = ""
    assert mgr.n_create(UID, attrs).status == MISSING_ATTRIBUTE_VALUE == 0x0121
    attrs = create_attrs()
    attrs.ScheduledStepAttributesSequence = Sequence()
    assert mgr.n_create(UID, attrs).status == MISSING_ATTRIBUTE_VALUE
    attrs = create_attrs()
    attrs.ScheduledStepAttributesSequence[0].StudyInstanceUID = ""
    assert mgr.n_create(UID, attrs).status == MISSING_ATTRIBUTE_VALUE
    assert mgr.instances() == []


def test_strict_type2() -> None:
    attrs = create_attrs()
    del attrs.PatientName
    assert MppsManager().n_create(UID, attrs).ok
    assert MppsManager(strict_type2=True).n_create(UID, attrs).status == MISSING_ATTRIBUTE


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_bad_vr_values_are_0106() -> None:
    mgr = MppsManager()
    for keyword, value in (("PerformedProcedureStepStartDate", "2026-01-15"),
                           ("PerformedProcedureStepStartDate", "20261399"),
                           ("PerformedProcedureStepStartTime", "9:30")):
        attrs = create_attrs()
        setattr(attrs, keyword, value)
        assert mgr.n_create(UID, attrs).status == INVALID_ATTRIBUTE_VALUE, value
    attrs = create_attrs()
    attrs.ScheduledStepAttributesSequence[0].StudyInstanceUID = "1.2.03.x"
    assert mgr.n_create(UID, attrs).status == INVALID_ATTRIBUTE_VALUE


def test_duplicate_create_is_0111_and_keeps_first() -> None:
    mgr = MppsManager()
    assert mgr.n_create(UID, create_attrs(accession="FIRST")).ok
    assert mgr.n_create(UID, create_attrs(accession="SECOND")).status == DUPLICATE_SOP_INSTANCE
    instance = mgr.get(UID)
    assert instance is not None and instance.references[0].accession == "FIRST"


def test_set_unknown_instance_is_0112() -> None:
    assert MppsManager().n_set("1.2.3.999", completion()).status == NO_SUCH_SOP_INSTANCE == 0x0112


def test_set_after_final_is_0110_with_comment_and_state_unchanged() -> None:
    for final in (completion(), _discontinue()):
        rec = Recorder()
        mgr = rec.manager()
        mgr.n_create(UID, create_attrs())
        assert mgr.n_set(UID, final).ok
        before = mgr.get(UID)
        again = Dataset()
        again.PerformedProcedureStepStatus = IN_PROGRESS
        again.PerformedProcedureStepDescription = "changed"
        result = mgr.n_set(UID, again)
        assert result.status == PROCESSING_FAILURE == 0x0110
        assert result.comment == "Performed Procedure Step Object may no longer be updated"
        assert result.error_id == ERROR_ID_NO_LONGER_UPDATABLE
        after = mgr.get(UID)
        assert before is not None and after is not None
        assert after.dataset == before.dataset and after.status in (COMPLETED, DISCONTINUED)
        assert len(rec.calls) == 2


def _discontinue() -> Dataset:
    ds = Dataset()
    ds.PerformedProcedureStepStatus = DISCONTINUED
    reason = Dataset()
    reason.CodeValue = "110514"
    reason.CodingSchemeDesignator = "DCM"
    reason.CodeMeaning = "Incorrect worklist entry selected"
    ds.PerformedProcedureStepDiscontinuationReasonCodeSequence = Sequence([reason])
    return ds


def test_set_cannot_change_create_only_attributes() -> None:
    mgr = MppsManager()
    mgr.n_create(UID, create_attrs())
    for keyword, value in (("PatientID", "OTHER"), ("PatientName", "EVIL^MALLORY")):
        mods = Dataset()
        setattr(mods, keyword, value)
        result = mgr.n_set(UID, mods)
        assert result.status == INVALID_ATTRIBUTE_VALUE, keyword
        assert result.status_dataset(with_attribute_list=True).AttributeIdentifierList
    mods = Dataset()
    ssas = Dataset()
    ssas.StudyInstanceUID = "1.2.3.4.5"
    mods.ScheduledStepAttributesSequence = Sequence([ssas])
    assert mgr.n_set(UID, mods).status == INVALID_ATTRIBUTE_VALUE
    instance = mgr.get(UID)
    assert instance is not None
    assert instance.dataset.PatientID == "PID1"
    assert instance.references[0].study_uid == "1.2.826.0.1.3680043.10.999.2"
    assert instance.status == IN_PROGRESS


def test_set_resending_unchanged_create_only_attribute_is_fine() -> None:
    mgr = MppsManager()
    mgr.n_create(UID, create_attrs())
    mods = completion()
    mods.PatientID = "PID1"
    assert mgr.n_set(UID, mods).ok


def test_complete_without_series_fails_and_stays_in_progress() -> None:
    rec = Recorder()
    mgr = rec.manager()
    mgr.n_create(UID, create_attrs())
    result = mgr.n_set(UID, completion(series=False))
    assert result.status == PROCESSING_FAILURE
    assert "PerformedSeriesSequence" in result.comment
    no_end = completion()
    del no_end.PerformedProcedureStepEndTime
    assert mgr.n_set(UID, no_end).status == PROCESSING_FAILURE
    instance = mgr.get(UID)
    assert instance is not None and instance.status == IN_PROGRESS
    assert rec.calls == [(IN_PROGRESS, UID)]


def test_final_state_can_be_built_over_several_sets() -> None:
    rec = Recorder()
    mgr = rec.manager()
    mgr.n_create(UID, create_attrs())
    partial = completion()
    partial.PerformedProcedureStepStatus = IN_PROGRESS
    assert mgr.n_set(UID, partial).ok
    finish = Dataset()
    finish.PerformedProcedureStepStatus = COMPLETED
    assert mgr.n_set(UID, finish).ok
    assert rec.calls[-2:] == [("updated", UID), (COMPLETED, UID)]


def test_unknown_or_empty_status_in_set() -> None:
    mgr = MppsManager()
    mgr.n_create(UID, create_attrs())
    mods = Dataset()
    mods.PerformedProcedureStepStatus = "PAUSED"
    assert mgr.n_set(UID, mods).status == INVALID_ATTRIBUTE_VALUE
    mods.PerformedProcedureStepStatus = ""
    assert mgr.n_set(UID, mods).status == MISSING_ATTRIBUTE_VALUE


def test_discontinued_notifies_and_is_final() -> None:
    rec = Recorder()
    mgr = rec.manager()
    mgr.n_create(UID, create_attrs())
    assert mgr.n_set(UID, _discontinue()).ok
    assert rec.calls[-1] == (DISCONTINUED, UID)


def test_callback_exception_does_not_change_status() -> None:
    def boom(_: MppsInstance) -> None:
        raise RuntimeError("owner bug")
    mgr = MppsManager(on_in_progress=boom)
    assert mgr.n_create(UID, create_attrs()).ok


def test_snapshots_are_isolated_and_unscheduled_reference() -> None:
    mgr = MppsManager()
    mgr.n_create(UID, create_attrs(accession=""))
    snap = mgr.get(UID)
    assert snap is not None
    snap.dataset.PatientID = "MUTATED"
    fresh = mgr.get(UID)
    assert fresh is not None and fresh.dataset.PatientID == "PID1"
    attrs = create_attrs(accession="")
    attrs.ScheduledStepAttributesSequence[0].RequestedProcedureID = ""
    attrs.ScheduledStepAttributesSequence[0].ScheduledProcedureStepID = ""
    mgr.n_create("1.2.3.77", attrs)
    unscheduled = mgr.get("1.2.3.77")
    assert unscheduled is not None and unscheduled.references[0].is_unscheduled
    mgr.mark_scheduled("1.2.3.77", False)
    marked = mgr.get("1.2.3.77")
    assert marked is not None and marked.scheduled is False


def test_stale_in_progress_instances() -> None:
    mgr = MppsManager()
    mgr.n_create(UID, create_attrs())
    instance = mgr.get(UID)
    assert instance is not None
    assert mgr.stale(60, now=instance.updated + 61)[0].sop_instance_uid == UID
    assert mgr.stale(60, now=instance.updated + 1) == []


def test_transport_answers_never_raise_and_give_command_fields() -> None:
    """answer_n_create/answer_n_set (used by both acceptors) turn a decoder that raises
    into 0110 and a missing data set into an empty one; response_fields are what an
    acceptor puts in the response command set."""
    mgr = MppsManager()

    def broken() -> Dataset:
        raise ValueError("truncated")

    failed = mgr.answer_n_create(UID, broken)
    assert failed.status == PROCESSING_FAILURE and mgr.get(UID) is None
    assert failed.response_fields() == {"ErrorComment": "attribute list cannot be processed"}
    assert mgr.answer_n_create(UID, lambda: None).status == MISSING_ATTRIBUTE
    assert mgr.answer_n_create(UID, create_attrs, calling_ae="CT1").ok
    assert mgr.answer_n_set(UID, broken).status == PROCESSING_FAILURE
    hijack = Dataset()
    hijack.PatientID = "SOMEONE-ELSE"
    refused = mgr.answer_n_set(UID, lambda: hijack)
    assert refused.status == INVALID_ATTRIBUTE_VALUE
    fields = refused.response_fields(with_attribute_list=True)
    assert str(fields["AttributeIdentifierList"]) == "(0010,0020)" and "Status" not in fields
    assert mgr.get(UID).dataset.PatientID == "PID1"  # type: ignore[union-attr]
