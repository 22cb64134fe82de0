"""Compare what a scenario expects with what a step saw, in words a QA lead can read.

Rules, kept few on purpose so authors can predict them:

* a mapping expects a *subset*: every key written must match, extra keys seen are fine;
* ``{min: 3, max: 5}`` (only those keys) is a range for a number;
* a list must match item by item and have the same length;
* a number and a string compare by text (``"0"`` == ``0``), and ``"0x0000"`` matches the
  integer status 0 and the word ``success`` (how steps report a DIMSE success); anything
  else must be equal;
* ``contains`` (:func:`check_contains`) passes when at least one seen item matches the
  expected mapping, ``excludes`` when none does: how a worklist or a query result is read.
"""

from __future__ import annotations

from typing import Any, Mapping

from simulators.scenario.results import ExpectationResult

MISSING = object()
_RANGE_KEYS = {"min", "max"}


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


def _status_code(value: Any) -> int | None:
    """A DIMSE status written as ``success``, ``0x0000`` or an integer; else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        text = value.strip().lower()
        if text == "success":
            return 0
        if text.startswith("0x"):
            try:
                return int(text, 16)
            except ValueError:
                return None
    return None


def _scalar_equal(expected: Any, seen: Any) -> bool:
    if expected == seen and type(expected) is not bool and type(seen) is not bool:
        return True
    if any(isinstance(v, str) and v.strip().lower() == "success" for v in (expected, seen)):
        return _status_code(expected) is not None and _status_code(expected) == _status_code(seen)
    if isinstance(expected, bool) or isinstance(seen, bool):
        return expected is seen
    if isinstance(expected, str) and isinstance(seen, int) and expected.lower().startswith("0x"):
        try:
            return int(expected, 16) == seen
        except ValueError:
            return False
    if isinstance(expected, (int, float)) and isinstance(seen, str) \
            or isinstance(expected, str) and isinstance(seen, (int, float)):
        return str(expected).strip() == str(seen).strip()
    return False


def compare(expected: Any, seen: Any, where: str = "") -> str | None:
    """``None`` when ``seen`` satisfies ``expected``, else a one-line reason."""
    label = f"{where}: " if where else ""
    if seen is MISSING:
        return f"{label}expected {_short(expected)}, but the step did not report it"
    if isinstance(expected, Mapping):
        if set(expected) and set(expected) <= _RANGE_KEYS and isinstance(seen, (int, float)) \
                and not isinstance(seen, bool):
            low, high = expected.get("min"), expected.get("max")
            if (low is not None and seen < low) or (high is not None and seen > high):
                return f"{label}expected between {low} and {high}, saw {seen}"
            return None
        if not isinstance(seen, Mapping):
            return f"{label}expected a mapping {_short(expected)}, saw {_short(seen)}"
        for key, value in expected.items():
            problem = compare(value, seen.get(key, MISSING), f"{where}.{key}" if where else str(key))
            if problem:
                return problem
        return None
    if isinstance(expected, list):
        if not isinstance(seen, (list, tuple)):
            return f"{label}expected a list {_short(expected)}, saw {_short(seen)}"
        if len(expected) != len(seen):
            return f"{label}expected {len(expected)} items {_short(expected)}, saw {len(seen)} " \
                   f"{_short(list(seen))}"
        for index, (want, got) in enumerate(zip(expected, seen)):
            problem = compare(want, got, f"{where}[{index}]")
            if problem:
                return problem
        return None
    if _scalar_equal(expected, seen):
        return None
    return f"{label}expected {_short(expected)}, saw {_short(seen)}"


def check(name: str, expected: Any, seen: Any) -> ExpectationResult:
    """One :class:`ExpectationResult` for ``name``."""
    problem = compare(expected, seen)
    shown = None if seen is MISSING else seen
    return ExpectationResult(name=name, expected=expected, seen=shown, passed=problem is None,
                             message=problem or "as expected")


def check_contains(name: str, expected: Any, items: list[Any], *,
                   present: bool = True) -> ExpectationResult:
    """``present``: some item matches ``expected``; otherwise: no item does."""
    matching = [item for item in items if compare(expected, item) is None]
    if present:
        passed = bool(matching)
        message = "as expected" if passed else (
            f"no item among {len(items)} matches {_short(expected)}"
            + (f"; closest: {compare(expected, items[0])}" if items else ""))
    else:
        passed = not matching
        message = "as expected" if passed else (
            f"{len(matching)} item(s) match {_short(expected)}, none should: {_short(matching[0])}")
    return ExpectationResult(name=name, expected=expected,
                             seen=f"{len(matching)} of {len(items)} items match",
                             passed=passed, message=message)


def check_all(expected: Mapping[str, Any], observed: Mapping[str, Any]) -> list[ExpectationResult]:
    """Every written expectation against the step's observations, one result each."""
    return [check(name, want, observed.get(name, MISSING)) for name, want in expected.items()]


__all__ = ["MISSING", "compare", "check", "check_all", "check_contains"]
