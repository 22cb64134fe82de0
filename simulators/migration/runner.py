"""One migration run: plan, sample-first pass, staged bulk run, rollback trigger, report.

The order of work and why:

1. **Plan into the checkpoint.** Every study of every stage is streamed from the
   legacy into the checkpoint (SQLite) as ``pending``; a re-run adds nothing it
   already knows, so it continues where the last run stopped.
2. **Sample-first pass** (``--sample N``): N studies chosen at random (seeded) are
   migrated and validated before anything else. If more than the rollback
   threshold of them show a transfer mismatch, the run stops *before* the bulk run:
   a systematic error (a wrong morph rule) costs N studies, not the archive.
3. **Bulk run**, stage by stage, on ``--workers`` threads. Every ``--check-every``
   studies (default 20) the running mismatch rate is checked, once at least
   :data:`ROLLBACK_MINIMUM` studies are done (below that, one transient failure
   would read as a 5%+ rate and abort a run of 100,000 studies over a blip, while a
   systematic error still shows within the first 20 studies).
4. **Cross-study checks and final classification**, then the reports.

What trips the threshold: only *transfer* mismatches (data lost or changed by the
migration). Data-quality findings are defects of the source, known before the run
and listed in the report; they never stop a migration (the ingestion rules have no
setting that asks for it). A transfer difference proven to be what a source defect
predicts is not counted either (see :mod:`simulators.migration.judge`); a failed
transfer always is.
"""

from __future__ import annotations

import random
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator, TextIO

from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

from simulators.dicom.fast import FastClient
from simulators.errors import ConfigError, PacsimError
from simulators.events import EventBus
from simulators.migration import plan as planning
from simulators.migration.checkpoint import Checkpoint
from simulators.migration.endpoints import MIGRATOR_AE, Endpoints, open_endpoints
from simulators.migration.headers import headers_by_get, headers_from_directory
from simulators.migration.inventory import StudyInventory, take_inventory
from simulators.migration.morph import load_rules
from simulators.migration.mover import VIA, Mover, Sessions
from simulators.migration.progress import Progress
from simulators.migration.reclassify import finalise
from simulators.migration.report import build_report, write_reports
from simulators.migration.validation import PixelCheck, Validator

ROLLBACK_MINIMUM = 20
VERIFICATION = "1.2.840.10008.1.1"
ACTIVE_STATES = ("pending", "moving", "moved", "failed")


@dataclass
class MigrationOptions:
    source: str
    target: str
    strategy: str = "full"
    since: str | None = None
    batch: int = 50
    #: The rollback trigger is checked every this many studies of the bulk run.
    check_every: int = ROLLBACK_MINIMUM
    workers: int = 1
    sample: int = 0
    rollback_threshold: float = 0.005
    report_dir: Path = Path("reports/migration")
    via: str = "move"
    rules: Path | None = None
    seed: int = 0
    #: Which instances' pixels are compared (see validation.PixelCheck).
    pixel_check: PixelCheck = field(default_factory=PixelCheck)
    progress: TextIO | None = None
    #: Our AE title towards both ends (a scenario's Orthanc only answers registered AEs).
    calling_ae: str = MIGRATOR_AE
    #: Validate the target against the legacy without transferring anything.
    validate_only: bool = False
    #: What the target supports (``Capabilities.as_dict()``) when the caller knows it
    #: (a scenario's site); only the report header shows it.
    capabilities: dict[str, dict[str, object]] | None = None

    def check(self) -> None:
        """Bad input is a ConfigError naming the option (exit 2)."""
        if self.via not in VIA:
            raise ConfigError(f"--via: expected move or get, got {self.via!r}", field="via")
        for name, value, low in (("batch", self.batch, 1), ("workers", self.workers, 1),
                                 ("check-every", self.check_every, 1),
                                 ("sample", self.sample, 0)):
            if value < low:
                raise ConfigError(f"--{name}: must be at least {low}, got {value}", field=name)
        if self.workers > 32:
            raise ConfigError("--workers: at most 32 parallel associations", field="workers")
        if not 0 <= self.rollback_threshold <= 1:
            raise ConfigError("--rollback-threshold: must be between 0% and 100%",
                              field="rollback-threshold")
        planning.stages_for(self.strategy, self.since)


@dataclass
class MigrationResult:
    report: dict
    report_dir: Path
    move_requests: int = 0

    @property
    def signed_off(self) -> bool:
        return bool(self.report["signed_off"])

    @property
    def stopped(self) -> str | None:
        return self.report.get("stopped")

    @property
    def exit_code(self) -> int:
        return 0 if self.signed_off else 1


def run_migration(options: MigrationOptions, *, endpoints: Endpoints | None = None,
                  events: EventBus | None = None) -> MigrationResult:
    """Run (or resume) a migration; endpoints already running may be passed in."""
    options.check()
    rules, morphs = load_rules(options.rules)
    if morphs and options.via != "get":
        raise ConfigError("--rules: tag morphing needs --via get (with C-MOVE the legacy sends "
                          "its own bytes straight to the target)", field="via")
    events = events or EventBus()
    report_dir = Path(options.report_dir)
    report_dir.mkdir(parents=True, exist_ok=True)
    with ExitStack() as stack, warnings.catch_warnings():
        # invalid values and odd character sets are findings here, not warnings to print
        warnings.simplefilter("ignore", UserWarning)
        if endpoints is None:
            endpoints = open_endpoints(stack, options.source, options.target,
                                       report_dir=report_dir, events=events)
        preflight(endpoints, events, options.calling_ae)
        checkpoint = Checkpoint(report_dir / "checkpoint.sqlite")
        stack.callback(checkpoint.close)
        mover = Mover(endpoints.source, endpoints.target, via=options.via, morphs=morphs,
                      events=events, calling_ae=options.calling_ae,
                      excluded=lambda sop_class: not rules.sop_class_allowed(sop_class))
        stack.callback(mover.close)
        validator = Validator(rules, checkpoint, _header_source(endpoints), seed=options.seed,
                              pixel_check=options.pixel_check)
        run = _Run(options, endpoints, checkpoint, mover, validator)
        report = run.execute()
        return MigrationResult(report, report_dir, mover.move_requests)


def preflight(endpoints: Endpoints, events: EventBus, calling_ae: str = MIGRATOR_AE) -> None:
    """C-ECHO both ends first: an unreachable peer is bad input (exit 2), not 100,000
    failed studies."""
    for peer, option in ((endpoints.source, "source"), (endpoints.target, "target")):
        client = FastClient(actor="migrate-preflight", events=events, dimse_timeout=10)
        try:
            client.connect(peer.host, peer.port, calling_ae, peer.ae_title,
                           [(VERIFICATION, [ExplicitVRLittleEndian, ImplicitVRLittleEndian])],
                           timeout=10)
            status = client.echo()
        except PacsimError as exc:
            raise ConfigError(f"--{option}: {peer} does not answer: {exc}", field=option) from exc
        finally:
            client.close()
        if status != 0:
            raise ConfigError(f"--{option}: {peer} answered C-ECHO with 0x{status:04X}",
                              field=option)


def _header_source(endpoints: Endpoints):
    """Where every source header comes from: the files of a served directory, or C-GET."""
    if endpoints.source_archive is not None:
        store = endpoints.source_archive.store
        return lambda uid, inventory, sessions: headers_from_directory(store, uid)
    return lambda uid, inventory, sessions: headers_by_get(sessions.source, uid,
                                                         inventory.sop_classes)


class _Run:
    def __init__(self, options: MigrationOptions, endpoints: Endpoints, checkpoint: Checkpoint,
                 mover: Mover, validator: Validator) -> None:
        self.options, self.endpoints, self.checkpoint = options, endpoints, checkpoint
        self.mover, self.validator = mover, validator
        self.stages = planning.stages_for(options.strategy, options.since)
        self.timings: dict[str, float] = {}
        self.stopped: str | None = None
        self.stop_reason = ""
        self.tripped: list[dict[str, str]] = []

    # ------------------------------------------------------------------ phases
    def execute(self) -> dict:
        started = time.monotonic()
        self._plan()
        self.timings["plan_s"] = time.monotonic() - started
        total = sum(self.checkpoint.counts().values())
        done = sum(self.checkpoint.counts()[s] for s in ("validated", "mismatch"))
        progress = Progress(total, self.options.progress, already=done)
        phase = time.monotonic()
        if self.options.sample:
            self._sample_pass(progress)
        self.timings["sample_s"] = time.monotonic() - phase
        phase = time.monotonic()
        try:
            if self.stopped is None:
                for stage in self.stages:
                    if not self._bulk(stage, progress):
                        break
        except KeyboardInterrupt:
            # Ctrl-C/SIGTERM: the checkpoint holds every study finished so far; write
            # the partial report and let the caller say how to resume (same command).
            self.stopped = "interrupted"
            self.stop_reason = ("INTERRUPTED (SIGINT/SIGTERM): run the same command again "
                                "to resume from the checkpoint")
        self.timings["bulk_s"] = time.monotonic() - phase
        progress.finish(self.stop_reason)
        phase = time.monotonic()
        # classification of late proofs is skipped on an interrupt: the re-run does it
        conflicts = finalise(self.checkpoint, self.validator) \
            if self.stopped != "interrupted" else []
        self.timings["classify_s"] = time.monotonic() - phase
        self.timings["total_s"] = time.monotonic() - started
        report = build_report(self.checkpoint, options=self.options, endpoints=self.endpoints,
                              stages=self.stages, timings=self.timings, stopped=self.stopped,
                              stop_reason=self.stop_reason, tripped=self.tripped,
                              conflicts=conflicts)
        write_reports(report, Path(self.options.report_dir))
        return report

    def _plan(self) -> None:
        for stage in self.stages:
            refs = self._stream(stage)
            for batch in planning.batches(refs, 500):
                self.checkpoint.add(batch, stage.name)
        self.checkpoint.remember("strategy", self.options.strategy)

    def _stream(self, stage: planning.Stage) -> Iterator[planning.StudyRef]:
        if self.endpoints.source_archive is not None:
            return planning.studies_from_index(self.endpoints.source_archive.store.db_path, stage)
        session = self.mover.sessions().source

        def find(date_range: str) -> list[planning.StudyRef]:
            return [planning.StudyRef(str(ds.get("StudyInstanceUID", "")),
                                      str(ds.get("StudyDate", "") or ""),
                                      str(ds.get("PatientID", "") or ""))
                    for ds in session.find_matches("STUDY", {"StudyDate": date_range},
                                                   keys=("StudyDate", "PatientID"))]
        return planning.studies_by_find(find, stage)

    def _sample_pass(self, progress: Progress) -> None:
        chosen = self.checkpoint.recall("sample_uids")
        if chosen is None:
            chosen = _reservoir(self.checkpoint.in_state(*ACTIVE_STATES, "validated", "mismatch"),
                                self.options.sample, self.options.seed)
            self.checkpoint.remember("sample_uids", chosen)
        refs = [planning.StudyRef(uid) for uid in chosen]
        self._process(refs, progress)
        finalise(self.checkpoint, self.validator, only=chosen)
        bad = self._mismatched(chosen)
        studies = len({item["study_uid"] for item in bad})
        rate = studies / len(chosen) if chosen else 0.0
        self.checkpoint.remember("sample", {"studies": len(chosen), "mismatched": studies,
                                            "rate": rate})
        if chosen and rate > self.options.rollback_threshold:
            self.stopped = "sample"
            self.tripped = bad[:50]
            self.stop_reason = (f"sample-first pass: {studies} of {len(chosen)} sampled studies "
                                f"({rate:.1%}) show transfer mismatches, above the rollback "
                                f"threshold {self.options.rollback_threshold:.2%}; bulk run not "
                                f"started ({_classes(bad)})")

    def _bulk(self, stage: planning.Stage, progress: Progress) -> bool:
        states = ACTIVE_STATES + (("validated", "mismatch") if self.options.validate_only else ())
        refs = self.checkpoint.in_state(*states, stage=stage.name)
        # the rollback trigger is checked every ``check_every`` studies, whatever the batch
        for chunk in planning.batches(refs, min(self.options.batch, self.options.check_every)):
            self._process(chunk, progress)
            if self._rollback_tripped():
                return False
        return True

    def _rollback_tripped(self) -> bool:
        counts = self.checkpoint.counts()
        done = counts["validated"] + counts["mismatch"] + counts["failed"]
        if done < ROLLBACK_MINIMUM or not (counts["mismatch"] + counts["failed"]):
            return False
        rate = (counts["mismatch"] + counts["failed"]) / done
        if rate <= self.options.rollback_threshold:
            return False
        finalise(self.checkpoint, self.validator)  # late proofs may excuse a difference
        counts = self.checkpoint.counts()
        bad_count = counts["mismatch"] + counts["failed"]
        rate = bad_count / done
        if rate <= self.options.rollback_threshold:
            return False
        bad = [{"study_uid": f.study_uid, "class": f.cls, "detail": f.detail}
               for f in self.checkpoint.findings("transfer")]
        self.stopped = "rollback"
        self.tripped = bad[:50]
        self.stop_reason = (f"rollback trigger: {bad_count} of {done} studies ({rate:.1%}) show "
                            f"transfer mismatches, above {self.options.rollback_threshold:.2%} "
                            f"({_classes(bad)})")
        return True

    def _mismatched(self, uids: Iterable[str]) -> list[dict[str, str]]:
        wanted = set(uids)
        return [{"study_uid": f.study_uid, "class": f.cls, "detail": f.detail}
                for f in self.checkpoint.findings("transfer") if f.study_uid in wanted]

    # ------------------------------------------------------------------ studies
    def _process(self, refs: list[planning.StudyRef], progress: Progress) -> None:
        def one(ref: planning.StudyRef) -> None:
            if self.options.validate_only or \
                    self.checkpoint.state(ref.study_uid) not in ("validated", "mismatch"):
                self._study(ref.study_uid)
                progress.advance()
        if self.options.workers == 1:
            for ref in refs:
                one(ref)
        else:
            with ThreadPoolExecutor(self.options.workers, thread_name_prefix="migrate") as pool:
                try:
                    list(pool.map(one, refs))
                except KeyboardInterrupt:  # let the running studies end, start no more
                    pool.shutdown(wait=True, cancel_futures=True)
                    raise
            # The pool's threads are gone, their associations are not: release them now,
            # or every batch leaves 2 x workers open on the legacy until it refuses more
            # (A-ASSOCIATE-RJ transient, local limit exceeded).
            self.mover.close()

    def _study(self, uid: str) -> None:
        started = time.monotonic()
        sessions = self.mover.sessions()
        try:
            inventory = take_inventory(sessions.source, uid)
            if not inventory.found:
                raise ConfigError("the legacy no longer knows this study", study_uid=uid)
            transfer = None
            state = self.checkpoint.state(uid)
            if state in ("pending", "failed", "moving") and not self.options.validate_only:
                # A study interrupted mid-move, or whose transfer failed on our side (the
                # legacy may still have completed its sub-operations), is first looked up on
                # the target: a re-run moves nothing the target already holds.
                missing = (_missing_on_target(inventory, sessions)
                           if state in ("moving", "failed") else None)
                if missing == set():
                    self.checkpoint.set_state(uid, "moved", "found complete on the target")
                else:
                    self.checkpoint.set_state(uid, "moving")
                    transfer = self.mover.transfer(inventory, only=missing)
                    self.checkpoint.set_state(uid, "moved", transfer.detail, moved=True)
            verdict = self.validator.validate(inventory, transfer, sessions)
        except (PacsimError, OSError) as exc:
            self.checkpoint.record(uid, [("transfer-failed", f"transfer failed: {exc}",
                                          "transfer")], "failed", time.monotonic() - started)
            sessions.source.close()
            sessions.target.close()
            return
        self.checkpoint.record(uid, verdict.rows(), verdict.state, time.monotonic() - started,
                               evidence=verdict.evidence, identities=verdict.identities)


def _missing_on_target(inventory: StudyInventory, sessions: Sessions) -> set[str] | None:
    """After a crash mid-transfer: the instances the target still lacks (an empty set
    when it holds them all, None when it does not know the study: move it whole)."""
    target = take_inventory(sessions.target, inventory.study_uid)
    if not target.found:
        return None
    return set(inventory.instances) - set(target.instances)


def _reservoir(refs: Iterable[planning.StudyRef], size: int, seed: int) -> list[str]:
    """A seeded uniform sample of ``size`` study UIDs from a stream (memory: ``size``)."""
    rng = random.Random(seed)
    chosen: list[str] = []
    for index, ref in enumerate(refs):
        if index < size:
            chosen.append(ref.study_uid)
        else:
            slot = rng.randint(0, index)
            if slot < size:
                chosen[slot] = ref.study_uid
    return chosen


def _classes(bad: list[dict[str, str]]) -> str:
    counts: dict[str, int] = {}
    for item in bad:
        counts[item["class"]] = counts.get(item["class"], 0) + 1
    return ", ".join(f"{cls}: {n}" for cls, n in sorted(counts.items())) or "none"


__all__ = ["MigrationOptions", "MigrationResult", "run_migration", "ROLLBACK_MINIMUM"]
