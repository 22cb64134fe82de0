"""pacsim has one Query/Retrieve SCU: ``simulators.dicom.qrscu.QrClient`` (issue 12).

Steps, the sandbox, the viewer, the probes, the test plugin and the migration used to
carry their own C-FIND/C-MOVE/C-GET loops. This scan fails when a module outside
``simulators/dicom/`` sends one of those requests itself: pynetdicom's
``send_c_find``/``send_c_move``/``send_c_get``, or a study- or patient-root C-FIND
through the fast client (``client.find(query, "study")``). Worklist C-FINDs through
the fast client are a modality's or a load test's own transaction (Basic Worklist
Management, not Q/R) and stay where they are.
"""

from __future__ import annotations

import ast

from tests.source_scan import SIMULATORS, Finding, scan_package

ALLOWED = "dicom/"
PYNETDICOM_REQUESTS = {"send_c_find", "send_c_move", "send_c_get"}
FAST_FINDS = {"find", "find_all", "count_matches"}
QR_MODELS = {"study", "patient"}


def _model(node: ast.Call) -> str | None:
    """The literal model argument of a fast-client find (second positional or
    ``model=``), if there is one."""
    candidates = node.args[1:2] + [k.value for k in node.keywords if k.arg == "model"]
    for value in candidates:
        if isinstance(value, ast.Constant) and isinstance(value.value, str):
            return value.value
    return None


def scan(source: str, path: str) -> list[Finding]:
    if path.startswith(ALLOWED):
        return []
    findings = []
    for node in ast.walk(ast.parse(source, filename=path)):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        name = node.func.attr
        if name in PYNETDICOM_REQUESTS:
            findings.append(Finding(path, node.lineno, f"calls {ast.unparse(node.func)}()"))
        elif name in FAST_FINDS and _model(node) in QR_MODELS:
            findings.append(Finding(path, node.lineno,
                                    f"sends a {_model(node)}-root C-FIND: "
                                    f"{ast.unparse(node.func)}()"))
    return findings


def test_only_the_dicom_package_sends_query_retrieve_requests() -> None:
    findings = scan_package(scan)
    assert not findings, ("C-FIND/C-MOVE/C-GET sent outside simulators/dicom/; use "
                          "simulators.dicom.qrscu.QrClient:\n" + "\n".join(map(str, findings)))


def test_the_scan_sees_each_way_to_send_a_request() -> None:
    """The scanner itself: a clean result above means something only if this finds all."""
    source = "\n".join([
        "for s, ds in assoc.send_c_find(query, model): pass",    # 1
        "responses = assoc.send_c_move(query, 'DEST', model)",   # 2
        "responses = self.assoc.send_c_get(query, model)",       # 3
        "status, found = client.find(query, 'study')",           # 4
        "found = client.find(query, model='patient')",          # 5
        "await association.find_all(query, 'study')",            # 6
        "status, items = client.find(query, 'worklist')",        # MWL: allowed
        "index = text.find('x')",                                # not DICOM: allowed
        "qr.find('STUDY', {'PatientID': 'x'})",                  # the one SCU: allowed
    ])
    assert [f.line for f in scan(source, "kpi/x.py")] == [1, 2, 3, 4, 5, 6]
    assert scan(source, "dicom/qrscu.py") == []


def test_the_one_scu_still_sends_them() -> None:
    """If the SCU moves out of the allowed package, the allowance must move with it."""
    text = (SIMULATORS / "dicom" / "qrscu.py").read_text(encoding="utf-8")
    assert "send_c_move" in text and "send_c_get" in text and "client.find(" in text
