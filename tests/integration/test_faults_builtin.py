"""Every catalogue fault against the strict built-in RIS and archive, over real sockets,
and fault profiles on a modality and an EHR: a malformed-MPPS scanner working next to a
normal modality must leave every other worklist item and order untouched."""

from __future__ import annotations

from typing import Iterator

import pytest
from pydicom.dataset import Dataset

from simulators.actors.ehr import Ehr, EhrConfig
from simulators.actors.modality import Modality, ModalityConfig
from simulators.dicom.address import AeAddress
from simulators.errors import ProtocolError
from simulators.events import EventBus
from simulators.faults import invariants
from simulators.injection.catalogue import CATALOGUE
from simulators.injection.model import CONFORMANT, IMPLEMENTATION_DEFINED, NOT_SUPPORTED, OPEN
from simulators.faults.probing import ProbeRun, run
from simulators.faults.runner import open_target
from simulators.faults.target import SECOND_CALLING_AE, Target

#: Where the standard leaves the answer open, or the built-in answer is a legitimate
#: "already done" (the verdict then says implementation-defined, never conformant).
OPEN_BY_DESIGN = {f.id for f in CATALOGUE if f.expected.kind == OPEN}


@pytest.fixture(scope="module")
def builtin() -> Iterator[tuple[Target, ProbeRun]]:
    with open_target("builtin") as target:
        yield target, ProbeRun(target)


@pytest.mark.parametrize("entry", CATALOGUE, ids=lambda f: f.id)
def test_builtin_answers_as_the_standard_requires(builtin, entry) -> None:  # type: ignore[no-untyped-def]
    target, session = builtin
    outcome = run(target, entry, session)
    if entry.hook == "tls.handshake":  # plain target: judged in test_faults_tls.py over TLS
        assert outcome.verdict == NOT_SUPPORTED and "TLS" in outcome.detail
        return
    expected = IMPLEMENTATION_DEFINED if entry.id in OPEN_BY_DESIGN else CONFORMANT
    assert outcome.verdict == expected, (outcome.sent, outcome.answered, outcome.detail)
    assert outcome.answered  # something was read back over the wire


@pytest.fixture
def fresh() -> Iterator[Target]:
    with open_target("builtin", events=EventBus()) as target:
        yield target


def _peers(target: Target) -> dict[str, AeAddress]:
    assert target.dicom and target.store
    return {"worklist": target.dicom, "mpps": target.dicom, "store": target.store}


def _item(target: Target, accession: str) -> Dataset:
    return next(i for i in target.ris.worklist_items()  # type: ignore[union-attr]
                if i.AccessionNumber == accession)


def test_malformed_scanner_leaves_every_other_item_untouched(fresh: Target) -> None:
    ris = fresh.ris
    assert ris is not None
    accessions = [item.AccessionNumber for item in ris.worklist_items()]
    bad_items, good_items = accessions[:5], accessions[5:7]
    common = dict(rows=8, cols=8, series=1, per_series=1, **_peers(fresh))
    bad = Modality(ModalityConfig(name="bad", ae_title="MODALITY", station_name="CT01_ROOM",
                                  faults=("malformed-mpps-scanner",), **common))
    good = Modality(ModalityConfig(name="good", ae_title=SECOND_CALLING_AE,
                                   station_name="CT01_ROOM", **common))
    before = invariants.take(fresh)
    with bad, good:
        refused = 0
        for accession in bad_items:
            try:
                bad.perform(_item(fresh, accession))
            except ProtocolError as exc:
                assert exc.context["status"] in ("0x0106", "0x0120")
                refused += 1
        for accession in good_items:
            result = good.perform(_item(fresh, accession))
            assert (result.mpps_create_status, result.mpps_final_status) == (0, 0)
    after = invariants.take(fresh)
    assert refused == 3  # not-in-progress, missing Type 1, bad DA: refused at N-CREATE
    assert [f[1] for f in bad.faults.fired if f[0] == "modality.mpps.n-create"] == [
        "mpps.create-not-in-progress", "mpps.create-missing-type1", "mpps.wrong-patient",
        "mpps.wrong-study-uid", "mpps.bad-vr"]
    # The good modality's orders moved; nothing else did, including the bad scanner's.
    assert invariants.changes(before, after, allowed=good_items) == []
    assert all(ris.order(a).step.status == "COMPLETED" for a in good_items)  # type: ignore[union-attr]
    assert all(ris.order(a).step.status == "SCHEDULED" for a in bad_items)  # type: ignore[union-attr]


def test_modality_store_fault_hook_reaches_the_archive(fresh: Target) -> None:
    ris = fresh.ris
    assert ris is not None
    modality = Modality(ModalityConfig(name="mismatch", ae_title="MODALITY", rows=8, cols=8,
                                       series=1, per_series=1, **_peers(fresh),
                                       faults=({"id": "store.sop-mismatch", "nth": 2},)))
    with modality:
        exam = modality.mpps_start(ris.worklist_items()[0])
        statuses = modality.store_study(exam, per_series=3)
    assert statuses[0] == 0 and statuses[2] == 0
    assert 0xA900 <= statuses[1] <= 0xA9FF or statuses[1] == 0xB007


def test_ehr_fault_profile_gets_the_standard_nacks(fresh: Target) -> None:
    assert fresh.hl7 is not None
    from simulators.world.world import World

    world = World(3)
    config = EhrConfig(ris_host=fresh.hl7[0], ris_port=fresh.hl7[1], faults=(
        {"id": "hl7.required-missing", "nth": 1}, {"id": "hl7.bad-table-value", "nth": 2},
        {"id": "mllp.no-start-block", "nth": 3}))
    with Ehr(config) as ehr:
        answers = [ehr.admit(world.patient(index)) for index in range(4)]
    assert [(a.code, a.error_code) for a in answers[:2]] == [("AE", 101), ("AE", 103)]
    assert answers[2].code == "" and "no ACK" in answers[2].text  # broken frame: no ACK
    assert answers[3].code == "AA"
    assert ris_has_patient(fresh, world.patient(3).patient_id)
    assert not ris_has_patient(fresh, world.patient(0).patient_id)


def ris_has_patient(target: Target, patient_id: str) -> bool:
    return target.ris is not None and target.ris.book.patient(patient_id) is not None
