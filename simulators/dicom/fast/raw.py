"""Received DIMSE messages as bytes: the requestor's lean path for C-STORE and C-FIND answers.

pynetdicom turns every received message into a ``P_DATA_TF`` object, a primitive
and a pydicom Dataset for the command set, then decodes any data set: about
0.25 ms per message. A load generator waiting for 400 C-STORE-RSPs or 200 x 250
C-FIND-RSPs mostly needs two numbers from each (Message ID Being Responded To and
Status) and, for worklist polls, only the count of matches. So the client reads
P-DATA-TF PDUs here by hand (PS3.8 9.3.5, E.2: PDV items, message control header),
parses the command set's group 0000 elements (implicit VR little endian, fixed
layout) into raw values, and keeps the data set as bytes. ``RawMessage.to_dimse``
gives pynetdicom's message for the rare paths that want it (N-EVENT-REPORT, N-*
results), decoded exactly as pynetdicom would.

Malformed input (a PDV overrunning its PDU, a command element overrunning the
command set, a data set before its command) raises ``ProtocolError``; the caller
answers with A-ABORT as for any malformed PDU. Sizes stay bounded by the
assembler's message limit.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from io import BytesIO

from pynetdicom import dimse_messages as msgs
from pynetdicom.dsutils import decode

from simulators.errors import PduTooLarge, ProtocolError

_ELEMENT = struct.Struct("<HHI")
_PDV = struct.Struct(">IBB")
_US = struct.Struct("<H")

#: Command element numbers (group 0000, PS3.7 E.1-1).
COMMAND_FIELD, MESSAGE_ID, RESPONDED_TO, DATA_SET_TYPE, STATUS = 0x0100, 0x0110, 0x0120, 0x0800, 0x0900
NO_DATA_SET = 0x0101


def parse_command(command: bytes) -> dict[int, bytes]:
    """Group 0000 elements of an encoded command set: element number -> raw value."""
    fields: dict[int, bytes] = {}
    offset, total = 0, len(command)
    while offset < total:  # bounded: every turn advances by at least 8 bytes
        if offset + 8 > total:
            raise ProtocolError("truncated command set element", offset=offset)
        group, element, length = _ELEMENT.unpack_from(command, offset)
        offset += 8
        if group != 0x0000 or length > total - offset:
            raise ProtocolError("malformed command set element", tag=f"({group:04X},{element:04X})",
                                length=length)
        fields[element] = command[offset:offset + length]
        offset += length
    return fields


@dataclass(slots=True)
class RawMessage:
    """One received DIMSE message: raw command values and the data set's bytes."""

    context_id: int
    command: bytes
    fields: dict[int, bytes]
    data: bytes | None = None

    def us(self, element: int, default: int | None = None) -> int | None:
        """A US command value (Status, Message ID...), ``default`` when absent or malformed."""
        raw = self.fields.get(element)
        return _US.unpack(raw)[0] if raw is not None and len(raw) == 2 else default

    def text(self, element: int) -> str:
        """A string command value (UI/AE/LO) without its padding."""
        return self.fields.get(element, b"").rstrip(b"\x00 ").decode("ascii", "replace")

    @property
    def command_field(self) -> int | None:
        return self.us(COMMAND_FIELD)

    @property
    def responded_to(self) -> int | None:
        return self.us(RESPONDED_TO)

    @property
    def status(self) -> int | None:
        return self.us(STATUS)

    @property
    def has_data_set(self) -> bool:
        return self.us(DATA_SET_TYPE, NO_DATA_SET) != NO_DATA_SET

    @property
    def is_event_report(self) -> bool:
        return self.command_field == 0x0100

    def to_dimse(self) -> msgs.DIMSEMessage:
        """pynetdicom's message for this one (command set decoded with pydicom)."""
        try:
            cls = msgs._MESSAGE_TYPES[self.command_field or 0][1]
        except KeyError:
            raise ProtocolError("unknown DIMSE command field",
                                command_field=f"0x{self.command_field or 0:04X}") from None
        message = cls()
        message.context_id = self.context_id
        message.encoded_command_set = BytesIO(self.command)
        try:
            message.command_set = decode(BytesIO(self.command), True, True)
        except Exception as exc:  # noqa: BLE001 - pydicom raises many types on bad bytes
            raise ProtocolError("malformed DIMSE command set",
                                reason=f"{type(exc).__name__}: {exc}"[:200]) from exc
        message.data_set = BytesIO(self.data or b"")
        return message


class RawAssembler:
    """Collects P-DATA-TF PDUs into :class:`RawMessage` objects, with a size bound."""

    def __init__(self, max_message: int) -> None:
        self.max_message = max_message
        self._reset()

    def _reset(self) -> None:
        self._size = 0
        self._command: list[bytes] = []
        self._data: list[bytes] = []
        self._message: RawMessage | None = None

    def feed(self, raw_pdata: bytes) -> list[RawMessage]:
        """Add one raw P-DATA-TF PDU (header included); returns the messages it completed."""
        self._size += len(raw_pdata)
        if self._size > self.max_message:
            raise PduTooLarge("DIMSE message exceeds the size limit", limit=self.max_message)
        done: list[RawMessage] = []
        offset, end = 6, len(raw_pdata)
        while offset < end:  # bounded: every PDV advances by at least 6 bytes
            if offset + 6 > end:
                raise ProtocolError("truncated PDV item", offset=offset)
            length, context_id, control = _PDV.unpack_from(raw_pdata, offset)
            if length < 2 or length > end - offset - 4:
                raise ProtocolError("PDV item length does not fit its PDU", length=length)
            fragment = raw_pdata[offset + 6:offset + 4 + length]
            offset += 4 + length
            message = self._add(context_id, control, fragment)
            if message is not None:
                done.append(message)
        return done

    def _add(self, context_id: int, control: int, fragment: bytes) -> RawMessage | None:
        if control & 0x01:  # command fragment
            if self._message is not None:
                raise ProtocolError("command fragment while a data set was expected")
            self._command.append(fragment)
            if not control & 0x02:
                return None
            command = b"".join(self._command)
            message = RawMessage(context_id, command, parse_command(command))
            if not message.has_data_set:
                self._reset()
                return message
            self._command, self._message = [], message
            return None
        if self._message is None:
            raise ProtocolError("data set fragment before its command set")
        self._data.append(fragment)
        if not control & 0x02:
            return None
        message = self._message
        message.data = b"".join(self._data)
        self._reset()
        return message


__all__ = ["RawMessage", "RawAssembler", "parse_command", "COMMAND_FIELD", "MESSAGE_ID",
           "RESPONDED_TO", "DATA_SET_TYPE", "STATUS", "NO_DATA_SET"]
