"""Run a scenario: start its actors, execute steps in order, always run ``finally``.

Shape borrowed from Tavern's runner: actors are entered in an ``ExitStack`` so they are
stopped whatever happens (failure, exception, Ctrl-C), and ``finally`` steps run even
after a failure. A scenario's ``load:`` section runs as one more step after ``steps``
(:mod:`simulators.scenario.steps.load`). Every step execution happens in a worker thread so ``timeout`` and
``within`` are real limits: a stuck executor is abandoned (and told so through its
context) instead of hanging the run. Events emitted on the bus while a step runs are
attributed to that step: events from the step's own thread to that step, events from
other threads (an actor's server side) to the top-level step that is running.
"""

from __future__ import annotations

import logging
import threading
import time
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

from simulators.errors import PacsimError, StepTimeout
from simulators.events import EventBus, Exchange
from simulators.scenario.context import FallbackResolver, StepContext, StepOutcome, Variables, \
    lookup_path
from simulators.scenario.expectations import check_all
from simulators.common.fields import format_duration
from simulators.scenario.models import Environment, Scenario, StepBase
from simulators.scenario.registry import default_registry
from simulators.scenario.results import ExpectationResult, RunResult, StepResult, worst
from simulators.site.capabilities import not_applicable

log = logging.getLogger(__name__)

#: Builds the scenario's actors (not yet started) from its environment, on the run's bus.
ActorsFactory = Callable[[Environment, EventBus], Mapping[str, Any]]

DEFAULT_STEP_TIMEOUT = 120.0
#: After Ctrl-C/SIGTERM, how long the running step may take to wrap up (a load step
#: drains its operations and writes its partial report) before the run moves on.
INTERRUPT_GRACE = 30.0
INTERRUPTED_STEP = "interrupted (SIGINT/SIGTERM) before the step finished"
NOT_RUN_INTERRUPTED = "not run: the run was interrupted"
#: How often a ``within:`` step is retried, at most (shorter windows poll faster).
MAX_POLL_INTERVAL = 1.0


class _EventCollector:
    """Subscribes to the bus and files each event under the step that caused it."""

    def __init__(self, events: EventBus) -> None:
        self._local = threading.local()
        self._lock = threading.Lock()
        self._top_level: list[StepResult] = []
        self.outside_steps: list[Exchange] = []
        self._unsubscribe = events.subscribe(self._on_event)

    def close(self) -> None:
        self._unsubscribe()

    def bind_thread(self, record: StepResult | None) -> None:
        """Events emitted from this thread belong to ``record``."""
        self._local.record = record

    @contextmanager
    def top_level(self, record: StepResult) -> Iterator[None]:
        with self._lock:
            self._top_level.append(record)
        try:
            yield
        finally:
            with self._lock:
                self._top_level.remove(record)

    def _on_event(self, event: Exchange) -> None:
        record = getattr(self._local, "record", None)
        if record is None:
            with self._lock:
                record = self._top_level[0] if self._top_level else None
        if record is None:
            self.outside_steps.append(event)
            return
        if not event.step:
            event.step = record.name
        record.events.append(event)


class _StepRunner:
    """Executes steps (and nested steps) with time limits, expectations and ``save``."""

    def __init__(self, collector: _EventCollector, default_timeout: float) -> None:
        self.collector = collector
        self.default_timeout = default_timeout
        #: Signals received so far: the first interrupts the run (finally steps still
        #: run), a second also skips the finally steps that have not started.
        self.interrupts = 0

    @property
    def interrupted(self) -> bool:
        return self.interrupts > 0

    def note_interrupt(self) -> None:
        self.interrupts += 1

    # ---------------------------------------------------------------- one step
    def run_step(self, step: StepBase, ctx: StepContext, position: str,
                 top_level: bool) -> StepResult:
        record = StepResult(name=step.title(position), do=step.do, phase=ctx.phase,  # type: ignore[arg-type]
                            started=time.time())
        began = time.monotonic()
        guard = self.collector.top_level(record) if top_level else _nothing()
        with guard:
            unsupported = ctx.unsupported(step.requires)
            if unsupported:  # N/A rests on the target's probe or a declaration, nothing else
                record.status = "unsupported"
                record.message = not_applicable(unsupported)
            else:
                before = self.interrupts
                self._execute_with_polling(step, ctx, record, began)
                if self.interrupts > before and record.status != "error":
                    record.notes.append("INTERRUPTED: the step wrapped up early; its "
                                        "figures cover only the time before the signal")
        record.duration = time.monotonic() - began
        limit = step.max_duration
        if limit is not None and record.status != "unsupported":
            within_limit = record.duration <= limit
            record.expectations.append(ExpectationResult(
                "max_duration", format_duration(limit), format_duration(record.duration),
                within_limit, "as expected" if within_limit else
                f"took {format_duration(record.duration)}, limit {format_duration(limit)}"))
            if not within_limit:
                record.status = worst(record.status, "failed")  # type: ignore[assignment]
                record.message = record.message or record.expectations[-1].message
        return record

    def _execute_with_polling(self, step: StepBase, ctx: StepContext, record: StepResult,
                              began: float) -> None:
        timeout = step.timeout if step.timeout is not None else self.default_timeout
        deadline = began + step.within if step.within is not None else None
        poll = min(MAX_POLL_INTERVAL, max(0.05, (step.within or 0) / 10))
        while True:
            record.attempts += 1
            limit = timeout if deadline is None else max(0.05, min(timeout,
                                                                    deadline - time.monotonic()))
            attempt_ctx = ctx.child(ctx.step_path)
            outcome, error = self._execute_once(step, attempt_ctx, record, limit)
            self._judge(step, attempt_ctx, record, outcome, error)
            if record.status in ("passed", "unsupported", "skipped") or deadline is None \
                    or self.interrupted:
                break
            if time.monotonic() + poll >= deadline or ctx.cancelled:
                record.message = (f"not met within {format_duration(step.within or 0)} "
                                  f"({record.attempts} attempts): {record.message}")
                break
            ctx.sleep(poll)
        if record.status == "passed" and step.save:
            self._save(step, ctx, record, outcome)

    def _execute_once(self, step: StepBase, ctx: StepContext, record: StepResult,
                      limit: float) -> tuple[StepOutcome | None, BaseException | None]:
        box: dict[str, Any] = {}
        # Finished-ness is this event, not Thread.is_alive(): a join() interrupted by
        # Ctrl-C can leave CPython 3.11 reporting a running thread as stopped.
        done = threading.Event()

        def work() -> None:
            self.collector.bind_thread(record)
            try:
                box["outcome"] = step.run(ctx)
            except BaseException as exc:  # noqa: BLE001 - reported as the step's error
                box["error"] = exc
            finally:
                self.collector.bind_thread(None)
                done.set()

        worker = threading.Thread(target=work, name=f"pacsim-step-{record.name}", daemon=True)
        worker.start()
        try:
            done.wait(limit)
        except KeyboardInterrupt:  # Ctrl-C/SIGTERM: tell the executor, let it wrap up
            self.note_interrupt()
            ctx.cancel(interrupted=True)
            try:
                done.wait(INTERRUPT_GRACE)
            except KeyboardInterrupt:  # a second signal: stop waiting for it
                self.note_interrupt()
            if not done.is_set() or "error" in box:
                return None, PacsimError(INTERRUPTED_STEP)
        if not done.is_set():
            ctx.cancel()
            return None, StepTimeout(f"did not finish within {format_duration(limit)}")
        if "error" in box:
            return None, box["error"]
        outcome = box.get("outcome")
        if outcome is None:
            outcome = StepOutcome()
        if not isinstance(outcome, StepOutcome):
            return None, TypeError(f"executor returned {type(outcome).__name__}, "
                                   f"not StepOutcome")
        return outcome, None

    def _judge(self, step: StepBase, ctx: StepContext, record: StepResult,
               outcome: StepOutcome | None, error: BaseException | None) -> None:
        """Set the record's status, message and expectations from one attempt."""
        record.notes = list(ctx.notes)
        if error is not None:
            record.status, record.expectations, record.children = "error", [], []
            if isinstance(error, PacsimError):
                record.message = str(error)
            else:
                log.error("step %r raised", record.name, exc_info=error)
                record.message = f"{type(error).__name__}: {error}"
            return
        assert outcome is not None
        record.children = outcome.children
        record.notes.extend(outcome.notes)
        record.artefacts = list(outcome.artefacts)
        try:
            record.expectations = (outcome.expectations if outcome.expectations is not None
                                   else check_all(ctx.resolve(step.expected()), outcome.observed))
        except PacsimError as exc:  # an expectation named an unknown $variable
            record.status, record.message, record.expectations = "error", str(exc), []
            return
        status = outcome.status or "passed"
        failing = [e for e in record.expectations if not e.passed]
        if failing:
            status = worst(status, "failed")
        record.status = status  # type: ignore[assignment]
        record.message = outcome.message if not failing else "; ".join(
            f"{e.name}: {e.message}" for e in failing)

    def _save(self, step: StepBase, ctx: StepContext, record: StepResult,
              outcome: StepOutcome | None) -> None:
        observed = outcome.observed if outcome else {}
        for source, variable in step.save.items():
            try:
                ctx.vars.set(variable, lookup_path(observed, source))
            except KeyError:
                known = ", ".join(sorted(observed)) or "nothing"
                record.status = "error"
                record.message = f"cannot save {source!r} into {variable}: the step observed " \
                                 f"only {known}"
                return

    # ---------------------------------------------------------------- nested steps
    def run_children(self, steps: Sequence[StepBase], parent: StepContext,
                     field_name: str) -> list[StepResult]:
        """Run ``steps`` concurrently (parallel step); results keep the written order."""
        results: list[StepResult | None] = [None] * len(steps)

        def run(index: int, nested: StepBase) -> None:
            path = f"{parent.step_path}.{index + 1}"
            results[index] = self.run_step(nested, parent.child(path), path, top_level=False)

        threads = [threading.Thread(target=run, args=(i, s), daemon=True,
                                    name=f"pacsim-parallel-{parent.step_path}.{i + 1}")
                   for i, s in enumerate(steps)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()  # each child bounds itself with its own timeout/within
        return [r if r is not None else StepResult(name=s.title("?"), do=s.do, status="error",
                                                   message="did not run")
                for r, s in zip(results, steps)]


@contextmanager
def _nothing() -> Iterator[None]:
    yield


def _start_actors(stack: ExitStack, environment: Environment, factory: ActorsFactory | None,
                  events: EventBus, result: RunResult) -> dict[str, Any]:
    """Build and start every actor; each one started is stopped again by ``stack``."""
    if factory is None:
        return {}
    actors = dict(factory(environment, events))
    for name, actor in actors.items():
        actor.start()
        stack.callback(_stop_actor, name, actor, result)
    return actors


def _stop_actor(name: str, actor: Any, result: RunResult) -> None:
    try:
        actor.stop()
    except Exception as exc:  # noqa: BLE001 - stopping the others matters more
        log.warning("actor %s did not stop cleanly: %s", name, exc)
        result.warnings.append(f"actor {name} did not stop cleanly: {exc}")


def run_scenario(scenario: Scenario, *, actors_factory: ActorsFactory | None = None,
                 events: EventBus | None = None, resolver: FallbackResolver | None = None,
                 step_timeout: float = DEFAULT_STEP_TIMEOUT, keep_going: bool = False,
                 report_dir: Path | None = None) -> RunResult:
    """Run ``scenario`` and return what happened; never raises for a failing step.

    ``actors_factory(environment, events)`` builds the actors (anything with
    ``start()``/``stop()``) on the run's bus. ``resolver`` looks up ``$names`` no step
    saved (the seeded world's patients). After a failed step the remaining ``steps`` are
    skipped unless ``keep_going``; ``finally`` steps always run. ``report_dir`` is the
    run's output folder, where steps that write files (load, migration) put them.
    """
    events = events or EventBus()
    result = RunResult(scenario=scenario.name, file=scenario.source_file, started=time.time(),
                       target_kind=scenario.environment.target_kind,
                       seed=scenario.environment.seed)
    began = time.monotonic()
    collector = _EventCollector(events)
    runner = _StepRunner(collector, step_timeout)
    try:
        with ExitStack() as stack:
            try:
                actors = _start_actors(stack, scenario.environment, actors_factory, events,
                                       result)
            except (PacsimError, OSError) as exc:
                result.environment_error = f"cannot start the environment: {exc}"
                return result
            variables = Variables(scenario.vars, fallback=resolver)
            root = StepContext(scenario=scenario, actors=actors, variables=variables,
                               events=events, run_children=runner.run_children,
                               report_dir=report_dir)
            _run_phase(runner, root, scenario, keep_going, result)
    except KeyboardInterrupt:
        # Ctrl-C/SIGTERM outside a step (starting or stopping actors, between steps):
        # the actors started are stopped by the stack; what finished is kept.
        runner.note_interrupt()
    finally:
        result.interrupted = result.interrupted or runner.interrupted
        collector.close()
        result.events_outside_steps = collector.outside_steps
        result.duration = time.monotonic() - began
    return result


def _run_phase(runner: _StepRunner, root: StepContext, scenario: Scenario, keep_going: bool,
               result: RunResult) -> None:
    try:
        failed = False
        for index, step in enumerate(scenario.steps, start=1):
            if runner.interrupted:
                result.steps.append(StepResult(name=step.title(f"step {index}"), do=step.do,
                                               status="skipped", started=time.time(),
                                               message=NOT_RUN_INTERRUPTED))
                continue
            if failed and not keep_going:
                result.steps.append(StepResult(name=step.title(f"step {index}"), do=step.do,
                                               status="skipped", started=time.time(),
                                               message="skipped: an earlier step did not pass"))
                continue
            ctx = root.child(str(index))
            record = runner.run_step(step, ctx, f"step {index}", top_level=True)
            result.steps.append(record)
            failed = failed or not record.passed
        if scenario.load is not None:
            _run_load_phase(runner, root, scenario, skip=failed and not keep_going,
                            result=result, interrupted=runner.interrupted)
    except KeyboardInterrupt:  # between steps or while a ``within:`` step waits to retry
        runner.note_interrupt()
    finally:
        for index, step in enumerate(scenario.finally_, start=1):
            if runner.interrupts > 1:  # a second signal: clean-up is abandoned too
                result.steps.append(StepResult(
                    name=step.title(f"finally {index}"), do=step.do, phase="finally",
                    status="skipped", started=time.time(),
                    message="not run: interrupted twice"))
                continue
            ctx = root.child(f"finally.{index}")
            ctx.phase = "finally"
            result.steps.append(runner.run_step(step, ctx, f"finally {index}", top_level=True))


def _run_load_phase(runner: _StepRunner, root: StepContext, scenario: Scenario, *, skip: bool,
                    result: RunResult, interrupted: bool = False) -> None:
    """The ``load:`` section as one more top-level step (its thresholds are expectations).

    The step type comes from the registry by its ``do:`` name, like every other step:
    the step modules sit above the runner (they need the site), so it never imports them.
    """
    assert scenario.load is not None
    step = default_registry.get("load.run").for_load_phase(scenario.load)
    if skip or interrupted:
        result.steps.append(StepResult(
            name=step.title("load"), do=step.do, status="skipped", started=time.time(),
            message=NOT_RUN_INTERRUPTED if interrupted
            else "skipped: an earlier step did not pass"))
        return
    result.steps.append(runner.run_step(step, root.child("load"), "load", top_level=True))


__all__ = ["run_scenario", "ActorsFactory", "DEFAULT_STEP_TIMEOUT"]
