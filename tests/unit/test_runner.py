"""The runner with generic steps and fake actors (no wire here: fakes are fine).

Fake actors emit real ``Exchange`` events on the run's bus, from the step's thread (a
client call) and from their own thread (a server answering), to prove attribution.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from simulators.errors import ProtocolError, ScenarioError
from simulators.events import EventBus
from simulators.scenario import StepBase, StepOutcome, default_registry, load_scenario, run_scenario
from simulators.scenario.models import BaseExpect
from pydantic import Field

REGISTRY = default_registry.copy()
#: ``hold: NAME`` keeps a ping's executor waiting on ``HOLDS[NAME]`` (set by the test);
#: ``PAST_HOLD`` gets NAME once that executor went on.
HOLDS: dict[str, threading.Event] = {}
PAST_HOLD: set[str] = set()


class FakeActor:
    """Records its lifecycle and emits exchanges like a real actor would."""

    def __init__(self, name: str, events: EventBus, fail_start: bool = False) -> None:
        self.name, self.events, self.fail_start = name, events, fail_start
        self.started = self.stopped = False
        self.calls = 0

    def start(self) -> None:
        if self.fail_start:
            raise ProtocolError("cannot reach the target", peer="127.0.0.1:1")
        self.started = True

    def stop(self) -> None:
        self.stopped = True

    def ping(self, status: str) -> str:
        """One client exchange in the caller's thread, one server exchange in another."""
        self.calls += 1
        with self.events.exchange("dicom.c-echo", self.name, peer="TARGET") as event:
            event.status = status
        server = threading.Thread(target=self._answer)
        server.start()
        server.join(2)
        return status

    def _answer(self) -> None:
        with self.events.exchange("dicom.c-echo-scp", f"{self.name}-server", peer=self.name):
            pass


@REGISTRY.step("test.ping")
class PingStep(StepBase):
    """Ping an actor; ``succeed_after`` makes it answer 0x0000 only from that call on."""

    class Expect(BaseExpect):
        status: str | None = None
        calls: int | dict[str, int] | None = None

    expect: Expect = Field(default_factory=Expect)
    succeed_after: int = 1
    fail_with: str | None = None
    hold: str | None = None
    requires_mpps: bool = False

    def run(self, ctx):  # noqa: ANN001, ANN201
        if self.fail_with:
            raise ProtocolError(self.fail_with, status="0xA700")
        if self.hold:
            HOLDS[self.hold].wait(30)  # deliberately ignores cancellation: a stuck executor
            PAST_HOLD.add(self.hold)
        actor = ctx.actor(self.by)
        status = "0x0000" if actor.calls + 1 >= self.succeed_after else "0xC000"
        actor.ping(status)
        return StepOutcome(observed={"status": status, "calls": actor.calls,
                                     "study": {"accession": f"ACC{actor.calls:03d}"}})


@REGISTRY.step("test.mpps")
class MppsStep(StepBase):
    requires = ("mpps",)

    def run(self, ctx):  # noqa: ANN001, ANN201
        raise AssertionError("an unsupported step must not run")


def scenario(tmp_path: Path, steps: str, finally_: str = "", target: str = "builtin") -> Any:
    text = (f"pacsim: 1\nname: runner test\nenvironment:\n  target: {target}\n  actors:\n"
            "    ct1: {kind: modality, modality: CT, ae_title: CT1}\n"
            "    ct2: {kind: modality, modality: CT, ae_title: CT2}\n"
            f"steps:\n{steps}" + (f"finally:\n{finally_}" if finally_ else ""))
    return load_scenario(tmp_path / "s.yaml", text=text, registry=REGISTRY)


class Factory:
    def __init__(self, fail: str | None = None) -> None:
        self.fail = fail
        self.actors: dict[str, FakeActor] = {}

    def __call__(self, environment: Any, events: EventBus) -> dict[str, FakeActor]:
        self.actors = {name: FakeActor(name, events, fail_start=(name == self.fail))
                       for name in environment.actors}
        return self.actors


def test_events_are_attributed_to_the_step_that_caused_them(tmp_path: Path) -> None:
    factory = Factory()
    result = run_scenario(scenario(tmp_path, (
        "  - {name: first ping, do: test.ping, by: ct1, expect: {status: '0x0000'}}\n"
        "  - {name: quiet, do: note, message: nothing on the wire}\n"
        "  - {name: second ping, do: test.ping, by: ct2}\n")), actors_factory=factory)
    assert result.passed and result.exit_code == 0
    first, quiet, second = result.steps
    assert [(e.kind, e.actor, e.step) for e in first.events] == [
        ("dicom.c-echo", "ct1", "first ping"), ("dicom.c-echo-scp", "ct1-server", "first ping")]
    assert quiet.events == []
    assert {e.actor for e in second.events} == {"ct2", "ct2-server"}
    assert first.expectations[0].seen == "0x0000" and first.expectations[0].passed
    assert all(a.started and a.stopped for a in factory.actors.values())


def test_finally_runs_after_a_failure_and_later_steps_are_skipped(tmp_path: Path) -> None:
    factory = Factory()
    result = run_scenario(scenario(tmp_path, (
        "  - {name: bad answer, do: test.ping, by: ct1, succeed_after: 5,"
        " expect: {status: '0x0000'}}\n"
        "  - {name: never, do: test.ping, by: ct2}\n"),
        "  - {name: clean up, do: test.ping, by: ct2}\n"), actors_factory=factory)
    statuses = [(s.name, s.phase, s.status) for s in result.steps]
    assert statuses == [("bad answer", "steps", "failed"), ("never", "steps", "skipped"),
                        ("clean up", "finally", "passed")]
    failed = result.steps[0].expectations[0]
    assert (failed.expected, failed.seen, failed.passed) == ("0x0000", "0xC000", False)
    assert "expected '0x0000', saw '0xC000'" in result.steps[0].message
    assert factory.actors["ct2"].calls == 1           # only the finally step pinged ct2
    assert result.exit_code == 1 and not result.passed
    assert all(a.stopped for a in factory.actors.values())


def test_keep_going_runs_every_step(tmp_path: Path) -> None:
    result = run_scenario(scenario(tmp_path, (
        "  - {do: test.ping, by: ct1, succeed_after: 9, expect: {status: '0x0000'}}\n"
        "  - {do: test.ping, by: ct2}\n")), actors_factory=Factory(), keep_going=True)
    assert [s.status for s in result.steps] == ["failed", "passed"]


def test_a_pacsim_error_fails_only_its_step(tmp_path: Path) -> None:
    result = run_scenario(scenario(tmp_path, "  - {do: test.ping, by: ct1, fail_with: refused}\n",
                                   "  - {do: note, message: still here}\n"),
                          actors_factory=Factory())
    assert [s.status for s in result.steps] == ["error", "passed"]
    assert result.steps[0].message == "refused (status=0xA700)"


def test_parallel_steps_run_concurrently(tmp_path: Path) -> None:
    """Concurrency is read from the children's own records, not a stopwatch: every wait
    began before any of them ended (run one after the other, each would begin only
    after the previous one's 300 ms), however slow the machine."""
    result = run_scenario(scenario(tmp_path, (
        "  - do: parallel\n    steps:\n"
        "      - {do: wait, duration: 300ms}\n      - {do: wait, duration: 300ms}\n"
        "      - {do: test.ping, by: ct1}\n      - {do: wait, duration: 300ms}\n")),
        actors_factory=Factory())
    parallel = result.steps[0]
    assert parallel.status == "passed" and len(parallel.children) == 4
    waits = [child for child in parallel.children if child.do == "wait"]
    assert len(waits) == 3 and all(child.duration >= 0.29 for child in waits)
    last_start = max(child.started for child in waits)
    first_end = min(child.started + child.duration for child in waits)
    assert last_start < first_end, [(c.started, c.duration) for c in waits]
    # the client exchange ran in the child's thread; the server side cannot tell which
    # concurrent child it served, so it is filed under the top-level parallel step
    assert [e.kind for e in parallel.children[2].events] == ["dicom.c-echo"]
    assert [e.kind for e in parallel.events] == ["dicom.c-echo-scp"]


def test_parallel_reports_failing_children(tmp_path: Path) -> None:
    result = run_scenario(scenario(tmp_path, (
        "  - do: parallel\n    steps:\n      - {name: ok, do: wait, duration: 10ms}\n"
        "      - {name: broken, do: test.ping, by: ct1, fail_with: aborted}\n")),
        actors_factory=Factory())
    parallel = result.steps[0]
    assert parallel.status == "error"
    assert [c.status for c in parallel.children] == ["passed", "error"]
    assert "1 of 2 parallel steps did not pass: broken" == parallel.message


def test_within_polls_until_the_expectation_holds(tmp_path: Path) -> None:
    factory = Factory()
    result = run_scenario(scenario(tmp_path, (
        "  - {do: test.ping, by: ct1, succeed_after: 3, within: 3s,"
        " expect: {status: '0x0000'}}\n")), actors_factory=factory)
    step = result.steps[0]
    assert step.status == "passed" and step.attempts == 3
    assert factory.actors["ct1"].calls == 3
    assert len(step.events) == 6                        # every attempt's exchanges


def test_within_gives_up_in_time(tmp_path: Path) -> None:
    """In time is counted in attempts, not read off a stopwatch: a 400ms window polled
    every 50 ms (a tenth of it) leaves room for at most 400/50 + 1 attempts, since
    each retry first sleeps its 50 ms; a window overrun (say 4 s) would make ~80. The
    elapsed time keeps a lower bound: it waited (almost) its window."""
    factory = Factory()
    began = time.monotonic()
    result = run_scenario(scenario(tmp_path, (
        "  - {do: test.ping, by: ct1, succeed_after: 1000, within: 400ms,"
        " expect: {status: '0x0000'}}\n")), actors_factory=factory)
    elapsed = time.monotonic() - began
    step = result.steps[0]
    assert step.status == "failed" and step.attempts >= 2
    assert step.message.startswith(f"not met within 400ms ({step.attempts} attempts)")
    assert step.attempts <= 400 // 50 + 1, step.attempts
    assert factory.actors["ct1"].calls == step.attempts
    assert elapsed >= 0.3


def test_timeout_abandons_a_stuck_step(tmp_path: Path) -> None:
    """The step's executor is held until the test lets it go (and ignores cancellation,
    like a stuck one), so the run can only have ended before that by abandoning it at
    its 200ms timeout; a runner waiting for it would end only after the hold's 30 s,
    with the executor past it. The step's duration keeps a lower bound."""
    HOLDS["stuck"] = threading.Event()
    try:
        result = run_scenario(scenario(tmp_path, (
            "  - {do: test.ping, by: ct1, hold: stuck, timeout: 200ms}\n"),
            "  - {do: note, message: after}\n"), actors_factory=Factory())
        assert "stuck" not in PAST_HOLD  # the run ended with its executor still held
    finally:
        HOLDS["stuck"].set()
    assert result.steps[0].status == "error"
    assert result.steps[0].message == "did not finish within 200ms"
    assert result.steps[0].duration >= 0.2
    assert [(s.phase, s.status) for s in result.steps[1:]] == [("finally", "passed")]
    assert result.steps[1].status == "passed"


def test_save_and_references(tmp_path: Path) -> None:
    result = run_scenario(scenario(tmp_path, (
        "  - {do: test.ping, by: ct1, save: {study.accession: $acc, calls: $n}}\n"
        "  - {do: test.ping, by: ct1, expect: {calls: {min: 2, max: 2}}}\n"
        "  - {do: note, message: 'saved $acc after $n call(s)'}\n"
        "  - {do: assert.vars, expect: {acc: ACC001, $n: 1}}\n"
        "  - {do: assert.vars, expect: {acc: $n}}\n")), actors_factory=Factory(),
        keep_going=True)
    assert [s.status for s in result.steps] == ["passed", "passed", "passed", "passed", "failed"]
    assert result.steps[2].message == "saved ACC001 after 1 call(s)"
    last = result.steps[4].expectations[0]
    assert (last.name, last.expected, last.seen) == ("$acc", 1, "ACC001")


def test_unknown_reference_and_unsavable_value_are_step_errors(tmp_path: Path) -> None:
    # $v passes the load-time check (a step saves it) but that save fails at run time
    result = run_scenario(scenario(tmp_path, (
        "  - {do: test.ping, by: ct1, save: {nothing.here: $v}}\n"
        "  - {do: assert.vars, expect: {x: $v}}\n")), actors_factory=Factory(),
        keep_going=True)
    assert [s.status for s in result.steps] == ["error", "error"]
    assert "cannot save 'nothing.here'" in result.steps[0].message
    assert "unknown variable $v" in result.steps[1].message


def test_a_reference_nothing_defines_is_refused_at_load_with_its_line(tmp_path: Path) -> None:
    """Issue 18: caught by `validate` with file:line and a did-you-mean, not at run time."""
    with pytest.raises(ScenarioError) as caught:
        scenario(tmp_path, ("  - {do: test.ping, by: ct1, save: {status: $answer}}\n"
                            "  - {do: assert.vars, expect: {x: $answr}}\n"))
    assert "unknown variable $answr" in caught.value.message
    assert "did you mean $answer?" in caught.value.message
    assert caught.value.line == 10 and caught.value.field == "steps[1].expect.x"  # 2nd step


def test_unsupported_transactions_are_reported_not_failed(tmp_path: Path) -> None:
    """Without a site nothing is probed: only a declaration makes a step N/A."""
    declared = scenario(tmp_path, "  - {name: MPPS, do: test.mpps}\n").with_environment(
        supports={"mpps": False})
    result = run_scenario(declared, actors_factory=Factory())
    assert result.steps[0].status == "unsupported"
    assert result.steps[0].message == ("not supported by target: mpps: declared not "
                                       "supported (supports: mpps)")
    assert result.passed and result.exit_code == 0


def test_max_duration_is_an_expectation(tmp_path: Path) -> None:
    result = run_scenario(scenario(tmp_path, (
        "  - {do: wait, duration: 150ms, expect: {max_duration: 50ms}}\n")))
    step = result.steps[0]
    assert step.status == "failed"
    assert step.expectations[0].name == "max_duration" and not step.expectations[0].passed


def test_environment_error_stops_what_was_started(tmp_path: Path) -> None:
    factory = Factory(fail="ct2")
    result = run_scenario(scenario(tmp_path, "  - {do: note, message: never}\n"),
                          actors_factory=factory)
    assert result.exit_code == 2 and not result.passed
    assert "cannot reach the target" in (result.environment_error or "")
    assert factory.actors["ct1"].started and factory.actors["ct1"].stopped
    assert result.steps == []


def test_actors_stop_and_finally_runs_when_a_step_raises_keyboard_interrupt(
        tmp_path: Path) -> None:
    factory = Factory()

    def interrupting_factory(environment: Any, bus: EventBus) -> dict[str, FakeActor]:
        actors = factory(environment, bus)

        def ping(status: str) -> str:
            raise KeyboardInterrupt
        actors["ct1"].ping = ping  # type: ignore[method-assign]
        return actors

    plan = scenario(tmp_path, "  - {do: test.ping, by: ct1}\n", "  - {do: note, message: bye}\n")
    result = run_scenario(plan, actors_factory=interrupting_factory)
    # raised inside the step's worker thread, it is that step's error, not a crash
    assert result.steps[0].status == "error" and "KeyboardInterrupt" in result.steps[0].message
    assert result.steps[-1].phase == "finally" and result.steps[-1].status == "passed"
    assert all(actor.stopped for actor in factory.actors.values())
