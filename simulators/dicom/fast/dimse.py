"""DIMSE request and response messages, built with pynetdicom's primitives.

Each builder fills a ``pynetdicom.dimse_primitives`` primitive and converts it with
``primitive_to_message`` so command sets are exactly what pynetdicom sends
(group length, Command Data Set Type...). The association layer only decides
what to send and when.
"""

from __future__ import annotations

from dataclasses import dataclass
from io import BytesIO

from pydicom.dataset import Dataset
from pynetdicom import dimse_messages as msgs
from pynetdicom import dimse_primitives as prims
from pynetdicom.status import code_to_category

#: Query models by short name (PS3.4 C.6 and K.6); a full UID is accepted as well.
FIND_MODELS = {
    "worklist": "1.2.840.10008.5.1.4.31",
    "patient": "1.2.840.10008.5.1.4.1.2.1.1",
    "study": "1.2.840.10008.5.1.4.1.2.2.1",
}

#: Event outcome names used on the EventBus, by pynetdicom status category.
_OUTCOMES = {"Success": "ok", "Pending": "ok", "Warning": "warning", "Cancel": "failed"}


def outcome_of(status: int) -> str:
    """``ok``/``warning``/``failed`` for a DIMSE status (PS3.7 Annex C)."""
    return _OUTCOMES.get(code_to_category(status), "failed")


def is_pending(status: int) -> bool:
    return status in (0xFF00, 0xFF01)


@dataclass(frozen=True, slots=True)
class NResult:
    """What an N-CREATE/N-SET/N-ACTION returned: status, instance and any dataset."""

    status: int
    instance_uid: str
    dataset: Dataset | None = None
    comment: str = ""

    @property
    def ok(self) -> bool:
        return outcome_of(self.status) == "ok"


@dataclass(frozen=True, slots=True)
class EventReport:
    """An N-EVENT-REPORT the peer sent us (storage commitment result, ...)."""

    sop_class: str
    instance_uid: str
    event_type: int
    dataset: Dataset | None


def _message(cls: type[msgs.DIMSEMessage], primitive: object) -> msgs.DIMSEMessage:
    message = cls()
    message.primitive_to_message(primitive)  # type: ignore[arg-type]
    return message


def c_echo_rq(message_id: int) -> msgs.DIMSEMessage:
    primitive = prims.C_ECHO()
    primitive.MessageID = message_id
    primitive.AffectedSOPClassUID = "1.2.840.10008.1.1"
    return _message(msgs.C_ECHO_RQ, primitive)


def c_store_rq(message_id: int, sop_class: str, sop_instance: str, priority: int = 2,
               data: bytes = b"\x00") -> msgs.DIMSEMessage:
    """A C-STORE-RQ whose command says a dataset follows (the caller sends it)."""
    primitive = prims.C_STORE()
    primitive.MessageID = message_id
    primitive.AffectedSOPClassUID = sop_class
    primitive.AffectedSOPInstanceUID = sop_instance
    primitive.Priority = priority
    primitive.DataSet = BytesIO(data)
    return _message(msgs.C_STORE_RQ, primitive)


def c_find_rq(message_id: int, sop_class: str, identifier: bytes,
              priority: int = 2) -> msgs.DIMSEMessage:
    primitive = prims.C_FIND()
    primitive.MessageID = message_id
    primitive.AffectedSOPClassUID = sop_class
    primitive.Priority = priority
    primitive.Identifier = BytesIO(identifier)
    return _message(msgs.C_FIND_RQ, primitive)


def c_cancel_rq(message_id: int) -> msgs.DIMSEMessage:
    primitive = prims.C_CANCEL()
    primitive.MessageIDBeingRespondedTo = message_id
    return _message(msgs.C_CANCEL_RQ, primitive)


def n_create_rq(message_id: int, sop_class: str, instance_uid: str | None,
                attributes: bytes) -> msgs.DIMSEMessage:
    primitive = prims.N_CREATE()
    primitive.MessageID = message_id
    primitive.AffectedSOPClassUID = sop_class
    if instance_uid:
        primitive.AffectedSOPInstanceUID = instance_uid
    primitive.AttributeList = BytesIO(attributes)
    return _message(msgs.N_CREATE_RQ, primitive)


def n_set_rq(message_id: int, sop_class: str, instance_uid: str,
             modification: bytes) -> msgs.DIMSEMessage:
    primitive = prims.N_SET()
    primitive.MessageID = message_id
    primitive.RequestedSOPClassUID = sop_class
    primitive.RequestedSOPInstanceUID = instance_uid
    primitive.ModificationList = BytesIO(modification)
    return _message(msgs.N_SET_RQ, primitive)


def n_action_rq(message_id: int, sop_class: str, instance_uid: str, action_type: int,
                information: bytes | None) -> msgs.DIMSEMessage:
    primitive = prims.N_ACTION()
    primitive.MessageID = message_id
    primitive.RequestedSOPClassUID = sop_class
    primitive.RequestedSOPInstanceUID = instance_uid
    primitive.ActionTypeID = action_type
    if information:
        primitive.ActionInformation = BytesIO(information)
    return _message(msgs.N_ACTION_RQ, primitive)


def n_event_report_rsp(request: msgs.DIMSEMessage, status: int = 0x0000) -> msgs.DIMSEMessage:
    """The answer to a received N-EVENT-REPORT-RQ (PS3.7 10.1.1.1.3)."""
    command = request.command_set
    primitive = prims.N_EVENT_REPORT()
    primitive.MessageIDBeingRespondedTo = command.MessageID
    primitive.AffectedSOPClassUID = command.AffectedSOPClassUID
    primitive.AffectedSOPInstanceUID = command.AffectedSOPInstanceUID
    primitive.EventTypeID = command.EventTypeID
    primitive.Status = status
    return _message(msgs.N_EVENT_REPORT_RSP, primitive)


def command_value(message: msgs.DIMSEMessage, keyword: str, default: object = None) -> object:
    """A command-set value, tolerating peers that leave optional elements out."""
    return message.command_set.get(keyword, default)


__all__ = [
    "FIND_MODELS", "NResult", "EventReport", "outcome_of", "is_pending", "c_echo_rq",
    "c_store_rq", "c_find_rq", "c_cancel_rq", "n_create_rq", "n_set_rq", "n_action_rq",
    "n_event_report_rsp", "command_value",
]
