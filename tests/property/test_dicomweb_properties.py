"""Properties of the DICOMweb request parsers: multipart/related bodies (STOW-RS),
Content-Type boundaries and Accept headers.

Valid bodies round-trip part for part; damaged or random input gives parts or an
HttpError (a 4xx answer), never another exception (a 500) and never a hang.
"""

from __future__ import annotations

from hypothesis import example, given, strategies as st

from simulators.dicomweb.media import (
    DICOM, HttpError, closing_delimiter, multipart_boundary, new_boundary, parse_accept,
    part_header, split_multipart, wanted_transfer_syntaxes,
)
from tests.property.strategies import damaged

contents = st.lists(st.binary(max_size=512), min_size=1, max_size=5)


def body_of(parts: list[bytes], boundary: str) -> bytes:
    out = b""
    for index, content in enumerate(parts):
        out += part_header(boundary, DICOM, index == 0) + content
    return out + closing_delimiter(boundary)


@st.composite
def multipart(draw: st.DrawFn) -> tuple[list[bytes], str, bytes]:
    boundary = new_boundary()
    parts = draw(contents)
    return parts, boundary, body_of(parts, boundary)


@given(multipart())
def test_multipart_round_trips(case) -> None:
    parts, boundary, body = case
    got = list(split_multipart(body, boundary))
    # a part containing the delimiter itself cannot round-trip; new_boundary is random
    if all(b"\r\n--" + boundary.encode() not in p for p in parts):
        assert [p.content for p in got] == parts
        assert all(p.content_type == DICOM for p in got)


def test_boundary_outside_latin_1_is_a_400_not_a_crash() -> None:
    """Regression (found by the property below): UnicodeEncodeError escaped as a 500."""
    for call in (lambda: list(split_multipart(b"--x\r\n\r\nA\r\n--x--", "\u0100")),
                 lambda: multipart_boundary('multipart/related; type="application/dicom"; '
                                            'boundary=\u0100b')):
        try:
            call()
        except HttpError as exc:
            assert exc.status == 400
        else:
            raise AssertionError("a non-ASCII boundary was accepted")


@given(damaged(multipart().map(lambda case: case[2])), st.data())
def test_damaged_multipart_gives_parts_or_http_error(body: bytes, data: st.DataObject) -> None:
    boundary = data.draw(st.one_of(st.just(body[2:38].decode("latin-1")), st.text(max_size=70)))
    try:
        for part in split_multipart(body, boundary):
            assert isinstance(part.content, bytes)
    except HttpError as exc:
        assert exc.status == 400


@given(st.one_of(st.text(max_size=300), st.builds(
    lambda b, t: f'multipart/related; type="{t}"; boundary={b}', st.text(max_size=80),
    st.sampled_from([DICOM, "application/dicom+json", ""]))))
def test_content_type_gives_a_boundary_or_http_error(content_type: str) -> None:
    try:
        boundary = multipart_boundary(content_type)
    except HttpError as exc:
        assert exc.status in (400, 415)
        return
    assert 0 < len(boundary) <= 200


@given(st.text(max_size=300))
def test_accept_headers_parse_or_refuse(header: str) -> None:
    try:
        parse_accept(header)
        wanted_transfer_syntaxes(header)
    except HttpError as exc:
        assert 400 <= exc.status < 500
