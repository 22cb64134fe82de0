"""Soak: mixed load for a long time against the built-in RIS and archive, watching
whether memory, open files and threads stay flat.

    python -m benchmarks.soak [--minutes 30] [--modalities 20] [--interval 10]
                              [--report-dir reports/soak]

(``make soak``; ``SOAK_MINUTES`` sets the duration.) Why: a leak of one file
descriptor per association or a few KB per HL7 message passes every functional test
and a one-minute load test, and takes a hospital's archive down on day three.

What runs: the RIS (MWL, MPPS, HL7) and the archive (C-STORE, storage, DICOMweb) in
this process; the load engine's virtual modalities in a worker process (so what is
sampled here is the servers, not the generator) doing worklist polls, whole
exams (HL7 order, worklist, MPPS in progress, C-STORE, MPPS completed), extra HL7
orders and C-ECHOs; and a DICOMweb client thread doing QIDO-RS, WADO-RS metadata and
STOW-RS. Every ``interval`` seconds this process's RSS, open files and threads are
sampled (/proc/self: Linux only).

Verdict (:func:`judge`): the first ``warmup`` share of the samples is skipped (thread
pools, caches and SQLite pages fill there); the rest is split in thirds and the
median of the last third is compared with the median of the first. A metric is
*flat* when that growth is within its allowance (RSS 32 MB, 16 open files, 8
threads); the least-squares slope per hour is reported beside it. The report is
``soak.json`` (samples, load and DICOMweb figures, verdict) and ``soak.txt``.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import requests

#: Allowed growth, last third vs first third after warm-up.
ALLOWANCES = {"rss_mb": 32.0, "open_fds": 16.0, "threads": 8.0}


@dataclass(frozen=True)
class Sample:
    """One reading of this process's resources, ``at`` seconds after the start."""

    at: float
    rss_mb: float
    open_fds: int
    threads: int


def sample_process(started: float) -> Sample:
    """RSS (VmRSS), open descriptors and threads of this process, from /proc/self."""
    rss_kb = 0
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss_kb = int(line.split()[1])
    return Sample(round(time.monotonic() - started, 1), round(rss_kb / 1024, 1),
                  len(os.listdir("/proc/self/fd")), threading.active_count())


@dataclass
class MetricVerdict:
    metric: str
    first: float     # median of the first third after warm-up
    last: float      # median of the last third
    growth: float
    allowance: float
    slope_per_hour: float
    flat: bool


@dataclass
class Verdict:
    flat: bool
    samples_used: int
    warmup_skipped: int
    metrics: list[MetricVerdict] = field(default_factory=list)

    def text(self) -> str:
        lines = [f"soak verdict: {'FLAT' if self.flat else 'NOT FLAT'} "
                 f"({self.samples_used} samples judged, {self.warmup_skipped} warm-up skipped)"]
        for m in self.metrics:
            lines.append(f"  {m.metric:9} {m.first:9.1f} -> {m.last:9.1f}  growth {m.growth:+8.1f} "
                         f"(allowed {m.allowance:g})  slope {m.slope_per_hour:+8.1f}/h  "
                         f"{'flat' if m.flat else 'GROWING'}")
        return "\n".join(lines)


def _slope_per_hour(xs: Sequence[float], ys: Sequence[float]) -> float:
    if len(xs) < 2:
        return 0.0
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
    var = sum((x - mean_x) ** 2 for x in xs)
    if var == 0:
        return 0.0
    return sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys)) / var * 3600.0


def judge(samples: Sequence[Sample], *, warmup: float = 0.2,
          allowances: dict[str, float] | None = None) -> Verdict:
    """Flat or not, per metric and overall (see the module docstring).

    Needs at least 6 samples after warm-up: fewer cannot tell growth from noise, and
    the verdict is then "not flat" with no metrics (never a pass on no evidence).
    """
    allowances = {**ALLOWANCES, **(allowances or {})}
    skip = int(len(samples) * warmup)
    used = list(samples[skip:])
    if len(used) < 6:
        return Verdict(False, len(used), skip)
    third = len(used) // 3
    head, tail = used[:third], used[-third:]
    metrics = []
    for metric, allowance in allowances.items():
        first = statistics.median(getattr(s, metric) for s in head)
        last = statistics.median(getattr(s, metric) for s in tail)
        slope = _slope_per_hour([s.at for s in used], [getattr(s, metric) for s in used])
        growth = last - first
        metrics.append(MetricVerdict(metric, first, last, round(growth, 1), allowance,
                                     round(slope, 1), growth <= allowance))
    return Verdict(all(m.flat for m in metrics), len(used), skip, metrics)


class Sampler(threading.Thread):
    """Samples every ``interval`` seconds until stopped (daemon: never blocks exit)."""

    def __init__(self, interval: float, started: float,
                 read: Callable[[float], Sample] = sample_process) -> None:
        super().__init__(name="soak-sampler", daemon=True)
        self.interval, self.started, self.read = interval, started, read
        self.samples: list[Sample] = []
        self._stop_event = threading.Event()

    def run(self) -> None:
        while True:
            self.samples.append(self.read(self.started))
            if self._stop_event.wait(self.interval):
                return

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=self.interval + 5)


class DicomWebTraffic(threading.Thread):
    """QIDO-RS, WADO-RS metadata and STOW-RS in a loop, counting answers by status."""

    def __init__(self, url: str, pause: float = 1.0) -> None:
        super().__init__(name="soak-dicomweb", daemon=True)
        self.url, self.pause = url, pause
        self.counts: dict[str, int] = {}
        self.errors: dict[str, int] = {}
        self._stop_event = threading.Event()

    def _count(self, kind: str, ok: bool) -> None:
        target = self.counts if ok else self.errors
        target[kind] = target.get(kind, 0) + 1

    def _stow(self, session: requests.Session) -> None:
        # why here: the generated image needs the world package; only STOW uses it
        from pydicom.uid import generate_uid
        from simulators.world.export import generated_context
        from simulators.world.images import build_study
        ds = build_study(generated_context("CR", 11), per_series=1, rows=32, cols=32)[0]
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        buffer = io.BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
        boundary = f"soak{generate_uid().replace('.', '')}"
        body = (f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
                + buffer.getvalue() + f"\r\n--{boundary}--\r\n".encode())
        answer = session.post(f"{self.url}/studies", data=body, timeout=30, headers={
            "Content-Type": f'multipart/related; type="application/dicom"; boundary={boundary}',
            "Accept": "application/dicom+json"})
        self._count("stow", answer.status_code == 200)

    def run(self) -> None:
        with requests.Session() as session:
            while not self._stop_event.is_set():
                try:
                    self._stow(session)
                    answer = session.get(f"{self.url}/studies", params={"limit": "20"},
                                         headers={"Accept": "application/dicom+json"}, timeout=30)
                    self._count("qido", answer.status_code == 200)
                    studies = answer.json() if answer.status_code == 200 else []
                    if studies:
                        uid = studies[-1]["0020000D"]["Value"][0]
                        meta = session.get(f"{self.url}/studies/{uid}/metadata", timeout=30,
                                           headers={"Accept": "application/dicom+json"})
                        self._count("wado-metadata", meta.status_code == 200)
                except (requests.RequestException, ValueError, KeyError, IndexError):
                    self._count("exception", False)
                self._stop_event.wait(self.pause)

    def stop(self) -> None:
        self._stop_event.set()
        self.join(timeout=60)


def soak_profile(minutes: float, modalities: int) -> Any:
    """The load engine's profile: every kind of DICOM/HL7 traffic, paced for hours."""
    from simulators.load import LoadProfile  # why here: keep --help fast
    return LoadProfile.model_validate({
        "name": "soak",
        "modalities": {"count": modalities, "mix": {"CT": 0.4, "MR": 0.2, "CR": 0.4},
                       "ae_title": "SK{modality}{n:03d}"},
        "prepare": {"orders_per_modality": 1},
        "stages": [{"name": "soak", "duration": f"{minutes * 60:.0f}s",
                    "target": modalities, "ramp": "5s"}],
        "every_modality": [
            {"do": "mwl.query", "every": "5s"},
            {"do": "modality.perform", "rate": "40/h",
             "images": {"series": 1, "per_series": 4, "rows": 64, "cols": 64}},
            {"do": "hl7.order", "rate": "60/h"},
            {"do": "echo", "every": "15s"},
        ],
        "max_operations": 2_000_000, "grace": "30s", "timeout": "30s",
        "report": {"live": False}})


def run_soak(minutes: float, *, modalities: int = 20, interval: float = 10.0,
             report_dir: Path = Path("reports/soak")) -> dict[str, Any]:
    """Run the soak and write soak.json / soak.txt; returns the JSON document."""
    # why here: importing the actors pulls in the whole DICOM stack; --help need not
    from simulators.actors.archive import Archive, ArchiveConfig
    from simulators.actors.ris import Ris, RisConfig
    from simulators.dicom.address import AeAddress
    from simulators.events import EventBus
    from simulators.load import LoadTarget, run_load
    from simulators.world.world import World

    report_dir.mkdir(parents=True, exist_ok=True)
    events = EventBus()
    started = time.monotonic()
    with Ris(RisConfig(name="soak-ris", ae_title="SOAK_RIS", max_associations=200),
             events=events) as ris, \
            Archive(ArchiveConfig(name="soak-archive", ae_title="SOAK_ARC", dicomweb_port=0,
                                  storage_dir=report_dir / "store", max_associations=200),
                    events=events) as archive:
        target = LoadTarget(
            worklist=AeAddress(ae_title="SOAK_RIS", host="127.0.0.1", port=ris.dicom_address[1]),
            mpps=AeAddress(ae_title="SOAK_RIS", host="127.0.0.1", port=ris.dicom_address[1]),
            store=AeAddress(ae_title="SOAK_ARC", host="127.0.0.1", port=archive.port),
            hl7=ris.hl7_address)
        sampler = Sampler(interval, started)
        web = DicomWebTraffic(archive.dicomweb_url or "")
        sampler.start()
        web.start()
        try:
            run = run_load(soak_profile(minutes, modalities), target, world=World(20261202),
                           isolate=True)
        finally:
            web.stop()
            sampler.stop()
        operations = run.stats.operations(run.duration)
        stored = archive.store.stats()
    verdict = judge(sampler.samples)
    document = {
        "minutes": minutes, "modalities": modalities, "interval_s": interval,
        "verdict": asdict(verdict), "flat": verdict.flat,
        "allowances": ALLOWANCES,
        "load": {name: {k: v for k, v in figures.items() if k in ("count", "errors", "p50", "p95")}
                 for name, figures in operations.items()},
        "dicomweb": {"ok": web.counts, "errors": web.errors},
        "archive": stored,
        "samples": [asdict(s) for s in sampler.samples],
    }
    (report_dir / "soak.json").write_text(json.dumps(document, indent=2), encoding="utf-8")
    text = _text(document, verdict)
    (report_dir / "soak.txt").write_text(text + "\n", encoding="utf-8")
    print(text)
    return document


def _text(document: dict[str, Any], verdict: Verdict) -> str:
    samples = document["samples"]
    first, last = samples[0], samples[-1]
    lines = [f"soak: {document['minutes']:g} min, {document['modalities']} modalities, "
             f"{len(samples)} samples every {document['interval_s']:g} s",
             f"  first sample: RSS {first['rss_mb']} MB, {first['open_fds']} files, "
             f"{first['threads']} threads; last: RSS {last['rss_mb']} MB, "
             f"{last['open_fds']} files, {last['threads']} threads"]
    for name, figures in sorted(document["load"].items()):
        lines.append(f"  {name:22} {figures.get('count', 0):7} done, "
                     f"{figures.get('errors', 0)} errors")
    lines.append(f"  dicomweb ok {document['dicomweb']['ok']}, errors {document['dicomweb']['errors']}")
    lines.append(verdict.text())
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.soak", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float,
                        default=float(os.environ.get("SOAK_MINUTES", "30")))
    parser.add_argument("--modalities", type=int, default=20)
    parser.add_argument("--interval", type=float, default=10.0, help="seconds between samples")
    parser.add_argument("--report-dir", type=Path, default=Path("reports/soak"))
    args = parser.parse_args(argv)
    if args.minutes <= 0 or args.interval <= 0:
        parser.error("--minutes and --interval must be positive")
    document = run_soak(args.minutes, modalities=args.modalities, interval=args.interval,
                        report_dir=args.report_dir)
    return 0 if document["flat"] else 1


if __name__ == "__main__":
    sys.exit(main())
