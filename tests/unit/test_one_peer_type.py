"""pacsim has one type for "a DICOM peer": ``AeAddress`` (issue 12).

Seven descriptions of a peer used to coexist with different field orders
(``DicomPeer(host, port, ae)``, ``AeAddress(ae, host, port)``, ``(host, port, ae)``
tuples), so a positional call could swap an AE title and a host without any error.
This scan fails when a second record (dataclass or named tuple) with exactly the fields
``host``, ``port`` and ``ae_title`` (any order; an added ``tls`` changes nothing) is
defined in ``simulators/`` outside ``simulators/dicom/address.py``, or when the
``tuple[str, int, str]`` alias the modality and the site used for a peer comes back.
Composites (a target with several endpoints) hold ``AeAddress`` values.
"""

from __future__ import annotations

import ast
import dataclasses

import pytest

from simulators.dicom.address import AeAddress, TlsSettings, parse_ae_address
from simulators.errors import ConfigError

from tests.source_scan import SIMULATORS, Finding, scan_package

HOME = "dicom/address.py"
PEER_FIELDS = frozenset({"host", "port", "ae_title"})
#: Optional extras that do not make a record anything but a peer.
PEER_EXTRAS = frozenset({"tls"})


def _name(node: ast.expr) -> str:
    """``dataclass`` for ``dataclass``, ``dataclasses.dataclass`` and ``dataclass(...)``."""
    if isinstance(node, ast.Call):
        node = node.func
    if isinstance(node, ast.Attribute):
        return node.attr
    return node.id if isinstance(node, ast.Name) else ""


def _class_fields(node: ast.ClassDef) -> set[str]:
    fields = set()
    for item in node.body:
        if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name) \
                and "ClassVar" not in ast.unparse(item.annotation):
            fields.add(item.target.id)
    return fields


def _call_fields(node: ast.Call) -> set[str] | None:
    """Fields of ``namedtuple("P", [...])``, ``namedtuple("P", "a b")`` and
    ``NamedTuple("P", [("a", str), ...])``; None when they are not literal."""
    if len(node.args) < 2:
        return None
    spec = node.args[1]
    if isinstance(spec, ast.Constant) and isinstance(spec.value, str):
        return set(spec.value.replace(",", " ").split())
    if isinstance(spec, (ast.List, ast.Tuple)):
        names = set()
        for element in spec.elts:
            if isinstance(element, ast.Constant) and isinstance(element.value, str):
                names.add(element.value)
            elif isinstance(element, ast.Tuple) and element.elts \
                    and isinstance(element.elts[0], ast.Constant):
                names.add(str(element.elts[0].value))
        return names
    return None


def _is_peer(fields: set[str] | None) -> bool:
    return fields is not None and PEER_FIELDS <= fields <= PEER_FIELDS | PEER_EXTRAS


def _is_peer_tuple(annotation: ast.expr) -> bool:
    """``tuple[str, int, str]`` (or ``Tuple[...]``): the old (host, port, AE) alias. Other
    triples (a fault log's ``(hook, id, count)``) are not peers."""
    if not isinstance(annotation, ast.Subscript) or _name(annotation.value) not in ("tuple",
                                                                                     "Tuple"):
        return False
    inner = annotation.slice
    items = inner.elts if isinstance(inner, ast.Tuple) else [inner]
    return [ast.unparse(item) for item in items] == ["str", "int", "str"]


def scan(source: str, path: str) -> list[Finding]:
    findings = []
    for node in ast.walk(ast.parse(source, filename=path)):
        if isinstance(node, ast.ClassDef):
            record = any(_name(d) == "dataclass" for d in node.decorator_list) \
                or any(_name(b) == "NamedTuple" for b in node.bases)
            if record and _is_peer(_class_fields(node)) and path != HOME:
                findings.append(Finding(path, node.lineno,
                                        f"class {node.name} repeats the peer fields"))
        elif isinstance(node, ast.Call) and _name(node.func) in ("namedtuple", "NamedTuple"):
            if _is_peer(_call_fields(node)) and path != HOME:
                findings.append(Finding(path, node.lineno, "a named tuple of the peer fields"))
        elif isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None \
                and _is_peer_tuple(node.value):
            findings.append(Finding(path, node.lineno,
                                    f"a (host, port, AE) tuple alias: {ast.unparse(node.value)}"))
    return sorted(findings, key=lambda finding: finding.line)


def test_no_second_peer_type_in_simulators() -> None:
    findings = scan_package(scan)
    assert not findings, ("a second DICOM peer type; use simulators.dicom.address.AeAddress:\n"
                          + "\n".join(map(str, findings)))


def test_the_scan_sees_each_way_to_define_a_peer_record() -> None:
    """The scanner itself: a clean result above means something only if this finds all."""
    source = "\n".join([
        "@dataclass(frozen=True, slots=True)",
        "class DicomPeer:",                                          # 2
        "    host: str",
        "    port: int",
        "    ae_title: str",
        "@dataclasses.dataclass",
        "class Endpoint:",                                           # 7
        "    ae_title: str",
        "    host: str",
        "    port: int",
        "class Peer(NamedTuple):",                                   # 11
        "    port: int",
        "    host: str",
        "    ae_title: str",
        "Other = namedtuple('Other', 'host port ae_title')",         # 15
        "Peer = tuple[str, int, str]",                               # 16
        "@dataclass",
        "class Composite:",                                          # a composite: allowed
        "    name: str",
        "    host: str",
        "    port: int",
        "    ae_title: str",
        "class Plain:",                                              # not a record: allowed
        "    host: str",
        "    port: int",
        "    ae_title: str",
        "HostPort = tuple[str, int]",                                # not a peer: allowed
        "FiredFault = tuple[str, str, int]",                         # not a peer: allowed
        "@dataclass",
        "class Secured:",                                            # 30 tls changes nothing
        "    host: str",
        "    port: int",
        "    ae_title: str",
        "    tls: object = None",
    ])
    assert [f.line for f in scan(source, "load/x.py")] == [2, 7, 11, 15, 16, 30]
    assert [f.line for f in scan(source, HOME)] == [16]


def test_the_one_peer_type_lives_where_the_scan_allows_it() -> None:
    fields = {f.name for f in dataclasses.fields(AeAddress)}
    assert PEER_FIELDS <= fields and fields - PEER_FIELDS == {"tls"}
    assert scan((SIMULATORS / HOME).read_text(encoding="utf-8"), "elsewhere.py"), \
        "AeAddress must be what the scan recognises"


def test_a_peer_is_built_by_keyword_only() -> None:
    with pytest.raises(TypeError):
        AeAddress("PACS", "10.0.0.5", 104)  # type: ignore[misc]
    peer = AeAddress(ae_title="PACS", host="10.0.0.5", port=104)
    assert (str(peer), peer.address, peer.tls) == ("PACS@10.0.0.5:104", "10.0.0.5:104", None)
    assert parse_ae_address(str(peer), "--target") == peer
    six = AeAddress(ae_title="PACS", host="::1", port=104)
    assert parse_ae_address(str(six), "--target") == six  # IPv6 is bracketed, so it parses


@pytest.mark.parametrize("fields", [dict(ae_title="", host="h", port=104),
                                    dict(ae_title="A" * 17, host="h", port=104),
                                    dict(ae_title="A", host="", port=104),
                                    dict(ae_title="A", host="h", port=0),
                                    dict(ae_title="A", host="h", port=65536)])
def test_an_impossible_peer_is_a_config_error(fields: dict) -> None:
    with pytest.raises(ConfigError):
        AeAddress(**fields)


def test_config_files_spell_a_peer_three_ways() -> None:
    peer = AeAddress(ae_title="PACS", host="pacs", port=104)
    assert AeAddress.from_config("PACS@pacs:104") == peer
    assert AeAddress.from_config({"ae_title": "PACS", "host": "pacs", "port": "104"}) == peer
    assert AeAddress.from_config(["pacs", 104, "PACS"]) == peer  # the order old files used
    secured = AeAddress.from_config({"ae_title": "PACS", "host": "pacs", "port": 2762,
                                     "tls": {"ca_file": "ca.pem"}})
    assert secured.tls == TlsSettings(ca="ca.pem")  # ca_file: the older spelling
    for bad in ({"ae_title": "PACS", "host": "pacs"}, {"ae": "PACS", "host": "h", "port": 1},
                "pacs:104", 104):
        with pytest.raises(ConfigError):
            AeAddress.from_config(bad)
