"""Media types and multipart/related bodies for the DICOMweb server (PS3.18 8.7, 8.6).

Why hand-written: the standard library's ``email`` parser accepts nearly anything
and buffers the whole message as objects; a STOW-RS body is a handful of binary
parts, and a WADO-RS response must be *streamed* (a study is written part by part
from disk, never held in memory). Both directions stay small enough to read here.

Parsing is strict where the standard is: a body without the boundary, a part
without a header block, or a multipart type other than ``application/dicom`` is a
:class:`HttpError` carrying the HTTP status the server answers (400 or 415),
never an exception that reaches the socket handler.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from typing import Iterator

from simulators.http.problem import Refused

DICOM = "application/dicom"
DICOM_JSON = "application/dicom+json"
MULTIPART = "multipart/related"
#: What a QIDO-RS / metadata client may ask for and get DICOM JSON (PS3.18 8.7.3).
JSON_ACCEPTABLE = (DICOM_JSON, "application/json", "application/*", "*/*")
_TOKEN = re.compile(r'\s*([^=;\s]+)\s*(?:=\s*("(?:[^"\\]|\\.)*"|[^;]*))?\s*')


class HttpError(Refused):
    """A request the server refuses: the HTTP status and a one-line reason.

    A :class:`~simulators.http.problem.Refused`, so it is answered with pacsim's one
    JSON error body like every other server's refusals."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(status, reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class MediaType:
    """``type/subtype; param=value`` with lower-cased type and parameter names."""

    kind: str
    params: dict[str, str] = field(default_factory=dict)

    def param(self, name: str) -> str:
        return self.params.get(name, "")


def parse_media_type(text: str) -> MediaType:
    """One media type or media range; quoted parameter values are unquoted."""
    head, _, rest = text.partition(";")
    params: dict[str, str] = {}
    for piece in rest.split(";"):
        match = _TOKEN.fullmatch(piece)
        if not piece.strip() or match is None:
            continue
        value = (match.group(2) or "").strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        params[match.group(1).lower()] = value
    return MediaType(head.strip().lower(), params)


def parse_accept(header: str | None) -> list[MediaType]:
    """The media ranges of an Accept header (empty header: anything goes)."""
    if not header or not header.strip():
        return [MediaType("*/*")]
    return [parse_media_type(part) for part in _split_outside_quotes(header) if part.strip()]


def _split_outside_quotes(header: str) -> list[str]:
    parts, current, quoted = [], [], False
    for char in header:
        if char == '"':
            quoted = not quoted
        if char == "," and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def require_json(accept: str | None) -> None:
    """406 unless the client takes DICOM JSON (the only QIDO/metadata format served)."""
    if not any(m.kind in JSON_ACCEPTABLE for m in parse_accept(accept)):
        raise HttpError(406, "only application/dicom+json is served for this resource")


def wanted_transfer_syntaxes(accept: str | None) -> list[str] | None:
    """For a WADO-RS instance request: the transfer syntaxes the client takes.

    ``None`` means "as stored" (``*``, no transfer-syntax parameter, or a wildcard
    range). PS3.18 8.7.3.5.2 makes Explicit VR Little Endian the default for
    ``application/dicom`` without the parameter, but every client accepts the
    stored syntax in practice and the archive never transcodes compressed data;
    an explicit list is honoured. 406 when nothing acceptable is multipart DICOM.
    """
    syntaxes: list[str] = []
    for media in parse_accept(accept):
        if media.kind in ("*/*", "multipart/*") or (media.kind == MULTIPART and
                                                      media.param("type") in ("", DICOM)):
            syntax = media.param("transfer-syntax")
            if not syntax or syntax == "*":
                return None
            syntaxes.append(syntax)
    if not syntaxes:
        raise HttpError(406, 'only multipart/related; type="application/dicom" is served')
    return syntaxes


def new_boundary() -> str:
    return f"pacsim-{uuid.uuid4().hex}"


def part_header(boundary: str, content_type: str, first: bool) -> bytes:
    """Delimiter plus part headers (RFC 2046 5.1.1); the CRLF before a delimiter
    belongs to the delimiter, so parts after the first start with one."""
    lead = b"" if first else b"\r\n"
    return lead + f"--{boundary}\r\nContent-Type: {content_type}\r\n\r\n".encode("ascii")


def closing_delimiter(boundary: str) -> bytes:
    return f"\r\n--{boundary}--\r\n".encode("ascii")


def multipart_boundary(content_type: str | None, *, part_type: str = DICOM) -> str:
    """The boundary of a ``multipart/related; type=...`` request body; 415 otherwise."""
    media = parse_media_type(content_type or "")
    if media.kind != MULTIPART:
        raise HttpError(415, f"expected {MULTIPART}; type=\"{part_type}\", "
                             f"got {media.kind or 'no Content-Type'}")
    declared = media.param("type").lower()
    if declared and declared != part_type:
        raise HttpError(415, f"unsupported multipart type {declared!r}; {part_type} only")
    boundary = media.param("boundary")
    if not boundary or len(boundary) > 200 or not boundary.isascii():
        # RFC 2046 5.1.1: a boundary is ASCII (bcharsnospace); anything else is refused
        raise HttpError(400, "multipart Content-Type without a usable boundary")
    return boundary


@dataclass(frozen=True, slots=True)
class Part:
    """One body part: its (lower-cased) headers and content."""

    headers: dict[str, str]
    content: bytes

    @property
    def content_type(self) -> str:
        return parse_media_type(self.headers.get("content-type", "")).kind


def split_multipart(body: bytes, boundary: str) -> Iterator[Part]:
    """The parts of a multipart body; :class:`HttpError` 400 for a broken one."""
    try:
        marker = b"--" + boundary.encode("latin-1")
    except UnicodeEncodeError:  # found by tests/property: was an unhandled error (a 500)
        raise HttpError(400, "multipart boundary is not a header-safe string") from None
    start = body.find(marker)
    if start < 0:
        raise HttpError(400, "multipart body does not contain its boundary")
    delimiter = b"\r\n" + marker
    position = start + len(marker)
    for _ in range(100_000):  # bounded: a part is at least a delimiter long
        if body.startswith(b"--", position):
            return  # closing delimiter
        line_end = body.find(b"\r\n", position)
        if line_end < 0:
            raise HttpError(400, "multipart body ends inside a delimiter line")
        header_end = body.find(b"\r\n\r\n", line_end)
        next_delimiter = body.find(delimiter, line_end)
        if next_delimiter < 0:
            raise HttpError(400, "multipart body has no closing delimiter")
        if header_end < 0 or header_end > next_delimiter:
            if header_end == line_end and header_end <= next_delimiter:
                header_end = line_end  # a part with no headers at all
            else:
                raise HttpError(400, "multipart part without a header block")
        headers = _headers(body[line_end + 2:header_end])
        yield Part(headers, body[header_end + 4:next_delimiter])
        position = next_delimiter + len(delimiter)
    raise HttpError(400, "too many parts in a multipart body")


def _headers(block: bytes) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in block.split(b"\r\n"):
        if not line.strip():
            continue
        name, colon, value = line.decode("latin-1").partition(":")
        if not colon:
            raise HttpError(400, "malformed multipart part header")
        headers[name.strip().lower()] = value.strip()
    return headers


__all__ = ["HttpError", "MediaType", "Part", "DICOM", "DICOM_JSON", "MULTIPART",
           "parse_media_type", "parse_accept", "require_json", "wanted_transfer_syntaxes",
           "new_boundary", "part_header", "closing_delimiter", "multipart_boundary",
           "split_multipart"]
