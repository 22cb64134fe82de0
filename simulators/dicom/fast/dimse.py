"""DIMSE request and response messages, built with pynetdicom's primitives.

Each builder fills a ``pynetdicom.dimse_primitives`` primitive and converts it with
``primitive_to_message`` so command sets are exactly what pynetdicom sends
(group length, Command Data Set Type...). The association layer only decides
what to send and when.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from io import BytesIO

from pydicom.datadict import dictionary_VR, tag_for_keyword
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
class FindCount:
    """A C-FIND run to the end: final status, number of matches, the first few decoded."""

    status: int
    matches: int
    items: tuple[Dataset, ...] = ()


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


def n_event_report_rq(message_id: int, sop_class: str, instance_uid: str, event_type: int,
                      information: bytes | None) -> msgs.DIMSEMessage:
    """An N-EVENT-REPORT-RQ (e.g. the storage commitment result, PS3.4 J.3.3)."""
    primitive = prims.N_EVENT_REPORT()
    primitive.MessageID = message_id
    primitive.AffectedSOPClassUID = sop_class
    primitive.AffectedSOPInstanceUID = instance_uid
    primitive.EventTypeID = event_type
    if information:
        primitive.EventInformation = BytesIO(information)
    return _message(msgs.N_EVENT_REPORT_RQ, primitive)


#: Request message class -> (primitive class, response message class, the command
#: elements a response copies from its request: (response keyword, request keyword)).
_RESPONSES: dict[type, tuple[type, type, tuple[tuple[str, str], ...]]] = {
    msgs.C_ECHO_RQ: (prims.C_ECHO, msgs.C_ECHO_RSP, (("AffectedSOPClassUID", "AffectedSOPClassUID"),)),
    msgs.C_STORE_RQ: (prims.C_STORE, msgs.C_STORE_RSP, (
        ("AffectedSOPClassUID", "AffectedSOPClassUID"),
        ("AffectedSOPInstanceUID", "AffectedSOPInstanceUID"))),
    msgs.C_FIND_RQ: (prims.C_FIND, msgs.C_FIND_RSP, (("AffectedSOPClassUID", "AffectedSOPClassUID"),)),
    msgs.C_MOVE_RQ: (prims.C_MOVE, msgs.C_MOVE_RSP, (("AffectedSOPClassUID", "AffectedSOPClassUID"),)),
    msgs.C_GET_RQ: (prims.C_GET, msgs.C_GET_RSP, (("AffectedSOPClassUID", "AffectedSOPClassUID"),)),
    msgs.N_CREATE_RQ: (prims.N_CREATE, msgs.N_CREATE_RSP, (
        ("AffectedSOPClassUID", "AffectedSOPClassUID"),
        ("AffectedSOPInstanceUID", "AffectedSOPInstanceUID"))),
    msgs.N_SET_RQ: (prims.N_SET, msgs.N_SET_RSP, (
        ("AffectedSOPClassUID", "RequestedSOPClassUID"),
        ("AffectedSOPInstanceUID", "RequestedSOPInstanceUID"))),
    msgs.N_ACTION_RQ: (prims.N_ACTION, msgs.N_ACTION_RSP, (
        ("AffectedSOPClassUID", "RequestedSOPClassUID"),
        ("AffectedSOPInstanceUID", "RequestedSOPInstanceUID"),
        ("ActionTypeID", "ActionTypeID"))),
    msgs.N_EVENT_REPORT_RQ: (prims.N_EVENT_REPORT, msgs.N_EVENT_REPORT_RSP, (
        ("AffectedSOPClassUID", "AffectedSOPClassUID"),
        ("AffectedSOPInstanceUID", "AffectedSOPInstanceUID"),
        ("EventTypeID", "EventTypeID"))),
    msgs.N_GET_RQ: (prims.N_GET, msgs.N_GET_RSP, (
        ("AffectedSOPClassUID", "RequestedSOPClassUID"),
        ("AffectedSOPInstanceUID", "RequestedSOPInstanceUID"))),
    msgs.N_DELETE_RQ: (prims.N_DELETE, msgs.N_DELETE_RSP, (
        ("AffectedSOPClassUID", "RequestedSOPClassUID"),
        ("AffectedSOPInstanceUID", "RequestedSOPInstanceUID"))),
}
#: Where each response primitive carries its data set.
_RESPONSE_DATASET = {
    prims.C_FIND: "Identifier", prims.C_MOVE: "Identifier", prims.C_GET: "Identifier",
    prims.N_CREATE: "AttributeList", prims.N_SET: "AttributeList", prims.N_GET: "AttributeList",
    prims.N_ACTION: "ActionReply", prims.N_EVENT_REPORT: "EventReply",
}


def response_to(request: msgs.DIMSEMessage, status: int, dataset: bytes | None = None,
                **fields: object) -> msgs.DIMSEMessage:
    """The response message to ``request`` (PS3.7 9.3/10.3), built like pynetdicom's SCPs.

    Copies what the standard says a response repeats (Message ID Being Responded
    To, affected SOP class/instance, action/event type); ``fields`` adds status
    elements (ErrorComment, ErrorID, sub-operation counts, ...) by primitive name,
    and ``dataset`` (already encoded) becomes the response's data set. A field the
    response cannot carry raises ``ValueError`` (a programming error, not input).
    """
    try:
        primitive_cls, response_cls, copied = _RESPONSES[type(request)]
    except KeyError:
        raise ValueError(f"no response for {type(request).__name__}") from None
    command = request.command_set
    primitive = primitive_cls()
    primitive.MessageIDBeingRespondedTo = command.MessageID
    for response_keyword, request_keyword in copied:
        value = command.get(request_keyword)
        if value is not None and value != "":
            setattr(primitive, response_keyword, value)
    primitive.Status = status
    for keyword, value in fields.items():
        if value is None:
            continue
        if not hasattr(primitive, keyword):
            raise ValueError(f"{primitive_cls.__name__} has no {keyword}")
        setattr(primitive, keyword, value)
    if dataset:
        setattr(primitive, _RESPONSE_DATASET[primitive_cls], BytesIO(dataset))
    return _message(response_cls, primitive)


#: Response message class -> its Command Field (PS3.7 Annex E).
_COMMAND_FIELD = {cls: code for code, (_, cls) in msgs._MESSAGE_TYPES.items()}
_US = struct.Struct("<HHIH")
_UL = struct.Struct("<HHII")
_TEXT_PAD = {"UI": b"\x00", "AE": b" ", "LO": b" ", "SH": b" "}
_COMMAND_VR: dict[str, tuple[int, str]] = {}
_ALLOWED: dict[type, frozenset[str]] = {}


def _command_vr(keyword: str) -> tuple[int, str]:
    found = _COMMAND_VR.get(keyword)
    if found is None:
        tag = tag_for_keyword(keyword)
        if tag is None or tag >> 16:
            raise ValueError(f"{keyword} is not a command element")
        found = _COMMAND_VR[keyword] = (tag, dictionary_VR(tag))
    return found


def _allowed(primitive_cls: type) -> frozenset[str]:
    allowed = _ALLOWED.get(primitive_cls)
    if allowed is None:
        probe = primitive_cls()
        allowed = _ALLOWED[primitive_cls] = frozenset(
            name for name in dir(probe) if name[:1].isupper() and not callable(getattr(probe, name)))
    return allowed


def _element(tag: int, vr: str, value: object) -> bytes:
    """One implicit VR little endian command element (group 0000)."""
    if vr == "US":
        return _US.pack(0, tag, 2, int(value))  # type: ignore[call-overload]
    if vr == "UL":
        return _UL.pack(0, tag, 4, int(value))  # type: ignore[call-overload]
    if vr == "AT":
        tags = value if isinstance(value, (list, tuple)) else [value]
        raw = b"".join(struct.pack("<HH", int(t) >> 16, int(t) & 0xFFFF) for t in tags)  # type: ignore[call-overload]
    else:
        raw = str(value).encode("ascii", "replace")
        if len(raw) % 2:
            raw += _TEXT_PAD[vr]
    return struct.pack("<HHI", 0, tag, len(raw)) + raw


def response_command(request: msgs.DIMSEMessage, status: int, has_dataset: bool,
                     **fields: object) -> bytes:
    """The encoded command set of the response to ``request``, without pydicom.

    Same content and bytes as :func:`response_to` (pynetdicom's primitives and
    encoder; ``tests/unit/test_fast_codec.py`` compares them), built directly:
    pynetdicom's path builds a Dataset and encodes it twice (once for the group
    length), ~0.3 ms per response, which on the C-STORE hot path cost as much as
    the index commit.
    """
    try:
        primitive_cls, response_cls, copied = _RESPONSES[type(request)]
    except KeyError:
        raise ValueError(f"no response for {type(request).__name__}") from None
    command = request.command_set
    values: dict[str, object] = {"MessageIDBeingRespondedTo": command.MessageID}
    for response_keyword, request_keyword in copied:
        value = command.get(request_keyword)
        if value is not None and value != "":
            values[response_keyword] = value
    allowed = _allowed(primitive_cls)
    for keyword, value in fields.items():
        if value is None:
            continue
        if keyword not in allowed:
            raise ValueError(f"{primitive_cls.__name__} has no {keyword}")
        values[keyword] = value
    values["Status"] = status
    values["CommandField"] = _COMMAND_FIELD[response_cls]
    values["CommandDataSetType"] = 0x0001 if has_dataset else 0x0101
    return command_bytes(values)


def command_bytes(values: dict[str, object]) -> bytes:
    """Encode a command set (implicit VR little endian, group length first) by hand.

    ``values`` maps command keywords to values; elements are written in tag order
    as PS3.7 6.3.1 requires. Same bytes as pynetdicom's encoder for the VRs a
    command set uses (US, UL, UI, AE, LO, SH, AT).
    """
    elements = sorted((*_command_vr(keyword), value) for keyword, value in values.items())
    body = b"".join(_element(tag, vr, value) for tag, vr, value in elements)
    return _UL.pack(0, 0, 4, len(body)) + body


def c_store_rq_command(message_id: int, sop_class: str, sop_instance: str,
                       priority: int = 2) -> bytes:
    """The encoded command set of a C-STORE-RQ with a data set following.

    Same bytes as ``c_store_rq`` through pynetdicom (``tests/unit/test_fast_codec.py``
    compares them), without building two pydicom Datasets per image: on the load
    generator's store path that cost more than sending the image.
    """
    return command_bytes({"AffectedSOPClassUID": sop_class, "CommandField": 0x0001,
                          "MessageID": message_id, "Priority": priority,
                          "CommandDataSetType": 0x0001, "AffectedSOPInstanceUID": sop_instance})


def c_find_rq_command(message_id: int, sop_class: str, priority: int = 2) -> bytes:
    """The encoded command set of a C-FIND-RQ (its identifier follows), as ``c_find_rq``."""
    return command_bytes({"AffectedSOPClassUID": sop_class, "CommandField": 0x0020,
                          "MessageID": message_id, "Priority": priority,
                          "CommandDataSetType": 0x0001})


def command_value(message: msgs.DIMSEMessage, keyword: str, default: object = None) -> object:
    """A command-set value, tolerating peers that leave optional elements out."""
    return message.command_set.get(keyword, default)


__all__ = [
    "FIND_MODELS", "NResult", "FindCount", "EventReport", "outcome_of", "is_pending", "c_echo_rq",
    "c_store_rq", "c_find_rq", "c_cancel_rq", "n_create_rq", "n_set_rq", "n_action_rq",
    "n_event_report_rsp", "n_event_report_rq", "response_to", "response_command", "command_value",
    "command_bytes", "c_store_rq_command", "c_find_rq_command",
]
