"""Defect 9 of issue 13: the RIS reads the SCU's SOP Class Extended Negotiation.

Combined date-time matching (PS3.4 C.2.2.2.5.1) is the SCU's choice per association
(byte 2 of the C-FIND service-class-application-information, C.5.1.1.4); the RIS's
``combined_datetime_matching`` setting only applies when the SCU sends none. Real
pynetdicom associations against a running RIS; the answers read back over the wire.
"""

from __future__ import annotations

import datetime as dt
from typing import Iterator

import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pynetdicom import AE
from pynetdicom.pdu_primitives import SOPClassExtendedNegotiation
from pynetdicom.sop_class import ModalityWorklistInformationFind

from simulators.actors.ris import Ris, RisConfig
from simulators.events import EventBus
from tests.integration.test_ris import make_order

#: Order 1 at 22:00 on the 15th, order 2 at 08:00 on the 16th.
LATE = dt.datetime(2026, 1, 15, 22, 0)
NEXT_MORNING = dt.datetime(2026, 1, 16, 8, 0)


@pytest.fixture
def ris_separate() -> Iterator[Ris]:
    """A RIS whose own setting is separate date and time matching (the default)."""
    with Ris(RisConfig(name="ris-extneg"), events=EventBus()) as actor:
        actor.schedule(make_order(1, start=LATE))
        actor.schedule(make_order(2, start=NEXT_MORNING))
        yield actor


def query() -> Dataset:
    """SPS start 15th 20:00 .. 16th 23:59: combined takes both, separate only 22:00."""
    identifier = Dataset()
    identifier.AccessionNumber = ""
    identifier.PatientName = ""
    step = Dataset()
    step.ScheduledStationAETitle = "CT01"
    step.ScheduledProcedureStepStartDate = "20260115-20260116"
    step.ScheduledProcedureStepStartTime = "2000-2359"
    identifier.ScheduledProcedureStepSequence = Sequence([step])
    return identifier


def find(ris: Ris, extended: bytes | None) -> tuple[set[str], bytes | None]:
    """Accessions matched, and the extended negotiation the RIS answered in the AC."""
    ae = AE(ae_title="EXTNEG")
    ae.add_requested_context(ModalityWorklistInformationFind)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 10
    ext_neg = []
    if extended is not None:
        item = SOPClassExtendedNegotiation()
        item.sop_class_uid = ModalityWorklistInformationFind
        item.service_class_application_information = extended
        ext_neg.append(item)
    host, port = ris.dicom_address
    assoc = ae.associate(host, port, ae_title=ris.config.ae_title, ext_neg=ext_neg)
    assert assoc.is_established
    try:
        answered = None
        for item in assoc.acceptor.user_information:
            if isinstance(item, SOPClassExtendedNegotiation):
                answered = bytes(item.service_class_application_information)
        found: set[str] = set()
        final = None
        for status, identifier in assoc.send_c_find(query(), ModalityWorklistInformationFind):
            if status.Status == 0xFF00:
                found.add(str(identifier.AccessionNumber))
            else:
                final = int(status.Status)
        assert final == 0x0000
        return found, answered
    finally:
        assoc.release()


def test_scu_asking_for_combined_matching_gets_it(ris_separate: Ris) -> None:
    found, answered = find(ris_separate, b"\x00\x01\x00\x00")
    assert answered == b"\x00\x01\x00\x00"
    assert found == {"ACC1", "ACC2"}


def test_scu_declining_combined_matching_gets_separate_matching() -> None:
    with Ris(RisConfig(name="ris-extneg-on", combined_datetime_matching=True),
             events=EventBus()) as ris:
        ris.schedule(make_order(1, start=LATE))
        ris.schedule(make_order(2, start=NEXT_MORNING))
        found, answered = find(ris, b"\x00\x00")
        assert answered == b"\x00\x00"
        assert found == {"ACC1"}
        # the same RIS, an SCU that says nothing: the setting (combined) applies
        assert find(ris, None) == ({"ACC1", "ACC2"}, None)


def test_no_extended_negotiation_falls_back_to_the_setting(ris_separate: Ris) -> None:
    assert find(ris_separate, None) == ({"ACC1"}, None)


def test_unsupported_fields_are_refused_in_the_answer(ris_separate: Ris) -> None:
    """Relational queries, fuzzy PN and timezone adjustment are not implemented: 0."""
    found, answered = find(ris_separate, b"\x01\x01\x01\x01")
    assert answered == b"\x00\x01\x00\x00"
    assert found == {"ACC1", "ACC2"}
