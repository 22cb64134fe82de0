"""Each SQLite file's SQL stays in the module that owns the file (issue 12).

Why a test: the archive store's schema leaked - C-FIND built SQL on its tables in
qr.py, the migration planner opened its index file, the legacy audit queried it -
so the store could not change a column without breaking modules it did not know.
The store now answers named queries (:mod:`simulators.dicom.store_index`); this scan
of ``simulators/`` keeps it that way, and holds the other SQLite owners (the go-live
probe store, the migration checkpoint, the cross-study checker) to the same rule.

The scan reads source, it runs nothing: an import of ``sqlite3``, an SQL statement
in a string, an ``execute(...)`` call, a query on a store, or a reach into another
object's connection attribute outside the owning module is a finding. Docstrings
are prose and are not scanned.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import simulators

SIMULATORS = Path(simulators.__file__).parent

#: The archive store: the only modules that know its tables or hold its connections.
ARCHIVE_STORE = {"dicom/store.py", "dicom/store_index.py"}
#: Every module that owns a SQLite file (its own schema, its own connection), and why.
SQL_OWNERS = ARCHIVE_STORE | {
    "kpi/store.py",              # go-live probe results
    "migration/checkpoint.py",   # the migration's resumable checkpoint
    "quality/checks.py",       # the cross-study checker's scratch database
}
ARCHIVE_TABLES = ("patients", "studies", "series", "instances", "store_meta")

_SQL = [re.compile(p) for p in (
    r"\bSELECT\b[\s\S]*\bFROM\b",
    r"^\s*\(?\s*(SELECT|INSERT|UPDATE|DELETE|CREATE|PRAGMA)\s+[\w*{]",
    r"^\s*(BEGIN(\s+\w+)?|COMMIT|ROLLBACK)\s*$",
    r"\bINSERT\s+(OR\s+\w+\s+)?INTO\b",
    r"\bDELETE\s+FROM\b",
    r"\bUPDATE\s+\w+\s+SET\b",
    r"\bCREATE\s+(UNIQUE\s+)?(TABLE|INDEX)\b",
    r"\bPRAGMA\s+\w+",
)]
_ARCHIVE_TABLE = re.compile(
    rf"\b(FROM|JOIN|INTO|UPDATE|TABLE)\s+({'|'.join(ARCHIVE_TABLES)})\b")
#: Attributes that hold a connection (or the store's index) in the owning modules.
_CONNECTION_ATTRS = {"_conn", "_db", "_writer", "_reader", "_readers", "_index", "_local",
                     "conn"}
_EXECUTE = {"execute", "executemany", "executescript"}


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def _strings(tree: ast.AST) -> list[tuple[int, str]]:
    """Every string in the code (f-strings with ``{}`` for their fields), no docstrings."""
    skip = _docstrings(tree)
    inside_fstrings = {id(part) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr)
                       for part in node.values}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            text = "".join(part.value if isinstance(part, ast.Constant) else "{}"
                           for part in node.values)
            found.append((node.lineno, text))
        elif (isinstance(node, ast.Constant) and isinstance(node.value, str)
              and id(node) not in skip and id(node) not in inside_fstrings):
            found.append((node.lineno, node.value))
    return found


def _own(receiver: ast.expr, *, deep: bool) -> bool:
    """``self.x``/``cls.x`` is an object's own attribute; in an owning module also
    ``self.a.x`` (e.g. the index's thread-local connection)."""
    while deep and isinstance(receiver, ast.Attribute):
        receiver = receiver.value
    return isinstance(receiver, ast.Name) and receiver.id in ("self", "cls")


def violations(source: str, module: str) -> list[str]:
    """Findings for one module's source; ``module`` is its path under ``simulators/``."""
    tree = ast.parse(source)
    found: list[str] = []
    owner, archive = module in SQL_OWNERS, module in ARCHIVE_STORE
    for node in ast.walk(tree):
        line = getattr(node, "lineno", 0)
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        else:
            names = []
        for name in names:
            if name.split(".")[0] == "sqlite3" and not owner:
                found.append(f"{module}:{line}: imports sqlite3")
            if name == "simulators.dicom.store_index" and module != "dicom/store.py":
                found.append(f"{module}:{line}: imports the store's private index module")
        if isinstance(node, ast.Attribute) and node.attr in _CONNECTION_ATTRS:
            if not _own(node.value, deep=owner):
                found.append(f"{module}:{line}: reaches into {ast.unparse(node)}")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr in _EXECUTE and (node.args or node.keywords) and not owner:
                found.append(f"{module}:{line}: runs SQL: {ast.unparse(node.func)}(...)")
            if (node.func.attr == "query" and not archive
                    and re.search(r"store$", ast.unparse(node.func.value), re.IGNORECASE)):
                found.append(f"{module}:{line}: raw SQL on the store: {ast.unparse(node.func)}")
    for line, text in _strings(tree):
        if not owner and any(p.search(text) for p in _SQL):
            found.append(f"{module}:{line}: SQL in a string: {text[:60]!r}")
        elif not archive and not owner and _ARCHIVE_TABLE.search(text):
            found.append(f"{module}:{line}: names an archive table: {text[:60]!r}")
        if owner and not archive and "index.sqlite" in text:
            found.append(f"{module}:{line}: opens the archive's index file")
    return found


def test_no_module_but_the_owner_touches_a_sqlite_files_sql() -> None:
    modules = sorted(SIMULATORS.rglob("*.py"))
    assert len(modules) > 100  # the scan really looked at the package
    found = [finding for path in modules
             for finding in violations(path.read_text(encoding="utf-8"),
                                       path.relative_to(SIMULATORS).as_posix())]
    assert found == []


def test_every_owner_exists() -> None:
    """A moved or renamed owner must update this list, not silently widen the rule."""
    assert all((SIMULATORS / module).is_file() for module in SQL_OWNERS)


# The scan must find what it is meant to find (the leaks issue 12 removed).
@pytest.mark.parametrize(("module", "source"), [
    ("migration/plan.py", "import sqlite3\n"),
    ("migration/plan.py", "from sqlite3 import connect\n"),
    ("legacy/audit.py", "rows = store.query('SELECT study_uid FROM studies ORDER BY rowid')\n"),
    ("legacy/audit.py", "rows = self.store.query(sql)\n"),
    ("dicom/qr.py", "_FROM = {'STUDY': 'FROM studies st JOIN patients p ON p.x = st.x'}\n"),
    ("dicom/qr.py", "q = f'SELECT {columns} FROM {table} WHERE {where}'\n"),
    ("dicom/qr.py", "sql = ('SELECT i.sop_uid, i.path '\n       'FROM instances i')\n"),
    ("kpi/report.py", "rows = probe_store._db.execute('SELECT * FROM results')\n"),
    ("migration/report.py", "checkpoint._conn.execute(sql, params)\n"),
    ("migration/runner.py", "cursor.executemany(statement, rows)\n"),
    ("dicom/bulk.py", "from simulators.dicom.store_index import index_rows\n"),
    ("migration/checkpoint.py", "path = root / 'index.sqlite'\n"),
    ("migration/checkpoint.py", "x = archive.store._index\n"),
    ("actors/archive.py", "rows = self.store._index.query(sql)\n"),
])
def test_the_scan_finds_a_leak(module: str, source: str) -> None:
    assert violations(source, module)


@pytest.mark.parametrize(("module", "source"), [
    ("migration/runner.py", "report = run.execute()\n"),
    ("migration/plan.py", "def f():\n    '''Reads SELECT study_uid FROM studies, once.'''\n"),
    ("kpi/cleanup.py", "HELP = 'DELETE /studies/{id} removes a study'\n"),
    ("legacy/seed.py", "log.info('moved %d instances from series %s', n, uid)\n"),
    ("migration/checkpoint.py", "self._conn.execute('SELECT state FROM studies')\n"),
    ("dicom/store_index.py", "import sqlite3\nrows = self._reader().execute('SELECT 1')\n"),
    ("dicom/store.py", "from simulators.dicom.store_index import StoreIndex\n"),
    ("dicom/store_index.py", "conn = self._local.conn\n"),
])
def test_the_scan_leaves_the_owners_and_prose_alone(module: str, source: str) -> None:
    assert violations(source, module) == []
