"""pacsim has one DICOM acceptor stack: ``FastServer`` (issue 12).

Every listener in ``simulators/`` (archive, RIS, the modality's storage-commitment
listener, ``CommitmentListener``, the KPI retrieve probe's C-MOVE destination) runs
on ``simulators.dicom.fast.FastServer``, so hardening, limits and TLS exist once.
This scan fails when pynetdicom's acceptor comes back: ``AE.start_server``, the
``simulators.dicom.ae.start_server`` wrapper, or pynetdicom's association server
classes. ``asyncio.start_server`` (what FastServer and the HL7 listener are built
on) is not pynetdicom and is allowed.

Tests run pynetdicom as an independent reference peer through
``tests.helpers.start_server``; nothing in ``simulators/`` may start one.
"""

from __future__ import annotations

import ast
import importlib

from tests.source_scan import Finding, scan_package

PYNETDICOM_SERVERS = {"start_server", "AssociationServer", "ThreadedAssociationServer"}


class _Scanner(ast.NodeVisitor):
    """Calls and imports of a pynetdicom acceptor, with the function they sit in."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.function: list[str] = []
        self.findings: list[Finding] = []

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        self.function.append(node.name)
        self.generic_visit(node)
        self.function.pop()

    visit_AsyncFunctionDef = visit_FunctionDef  # type: ignore[assignment]

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        stdlib = (isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name)
                  and func.value.id == "asyncio")
        if name in PYNETDICOM_SERVERS and not stdlib:
            self.findings.append(Finding(self.path, node.lineno, f"calls {ast.unparse(func)}()"))
        self.generic_visit(node)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        for alias in node.names:
            if alias.name == "start_server" and node.module != "asyncio":
                self.findings.append(Finding(self.path, node.lineno,
                                             f"imports start_server from {node.module}"))
        self.generic_visit(node)


def scan(source: str, path: str) -> list[Finding]:
    scanner = _Scanner(path)
    scanner.visit(ast.parse(source, filename=path))
    return scanner.findings


def test_no_pynetdicom_acceptor_is_started_in_simulators() -> None:
    findings = scan_package(scan)
    assert not findings, ("pynetdicom acceptor used; listeners belong on FastServer:\n"
                          + "\n".join(map(str, findings)))


def test_the_reference_peer_lives_with_the_tests() -> None:
    """pynetdicom as a reference peer is a test helper, not part of the package."""
    from tests import helpers

    assert callable(helpers.start_server)
    assert not hasattr(importlib.import_module("simulators.dicom.ae"), "start_server")


def test_the_scan_sees_each_way_to_start_a_pynetdicom_acceptor() -> None:
    """The scanner itself: a clean result above means something only if this finds all."""
    source = "\n".join([
        "server = ae.start_server(('', 0), block=False)",          # 1 pynetdicom AE
        "from simulators.dicom.ae import start_server",             # 2 the wrapper
        "start_server(ae, '127.0.0.1', 0)",                         # 3
        "ThreadedAssociationServer(ae, ('', 0), None, [])",         # 4 below AE
        "transport.AssociationServer(ae, ('', 0), None, [])",       # 5
        "async def f():",
        "    await asyncio.start_server(cb, '127.0.0.1', 0)",      # stdlib: allowed
        "from asyncio import start_server",                         # stdlib: allowed
        "def start_server(ae, host, port):",
        "    return ae.start_server((host, port))",                 # 10 a wrapper of its own
    ])
    assert [f.line for f in scan(source, "actors/x.py")] == [1, 2, 3, 4, 5, 10]


def test_a_listener_built_from_ae_settings_keeps_the_whole_ae_policy() -> None:
    """``ServerSettings.for_ae`` is how listeners move here without changing policy."""
    from simulators.dicom.ae import AeSettings
    from simulators.dicom.fast import ServerSettings, SupportedContext

    ae = AeSettings("LISTENER", max_pdu=65_536, acse_timeout=7.0, dimse_timeout=8.0,
                    network_timeout=9.0, maximum_associations=3, artim_timeout=4.0,
                    max_unassociated=40, allowed_calling=frozenset({"PACS"}), require_called=False)
    contexts = (SupportedContext("1.2.840.10008.1.20.1", ("1.2.840.10008.1.2",), True, True),)
    settings = ServerSettings.for_ae(ae, contexts, host="0.0.0.0", port=11112, workers=2)
    assert settings == ServerSettings(
        ae_title="LISTENER", host="0.0.0.0", port=11112, contexts=contexts, max_pdu=65_536,
        max_associations=3, max_unassociated=40, artim_timeout=4.0,
        allowed_calling=frozenset({"PACS"}), require_called=False, acse_timeout=7.0, idle_timeout=9.0, dimse_timeout=8.0, workers=2)
