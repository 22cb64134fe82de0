"""Probe overhead on the target: its CPU seconds, idle vs probed, per probe cycle.

Run from the repository root::

    python -m benchmarks.probe_overhead [--phase 20] [--every 2] [--orthanc]

The built-in target runs as real processes (``pacsim serve archive`` with DICOMweb
and ``pacsim serve ris``), so their CPU time can be read from ``/proc/PID/stat``
(user + system) without counting the prober. With ``--orthanc`` a local Orthanc
(DICOMweb plugin when installed) is measured in the same run. Each target is left
idle for ``--phase`` seconds, then probed every ``--every`` seconds for another
``--phase`` seconds (all probes, one canary study of 2 images of 256x256 per cycle,
deleted afterwards on Orthanc). Printed per target:

* CPU seconds per probe cycle: (probed CPU - idle CPU) / cycles;
* CPU seconds per hour at ``--every 5m`` (12 cycles) and that as a fraction of one
  core (the ratio a capacity planner asks for);
* the prober's own CPU per cycle (this process, for sizing the probe host).
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from simulators.dicom.address import AeAddress
from simulators.kpi.probes_retrieve import ImageReceiver
from simulators.kpi.runner import ProbeRunner
from simulators.kpi.target import PROBE_AE, ProbeTarget
from simulators.peers.process import free_port, terminate

ROOT = Path(__file__).resolve().parents[1]
TICKS = os.sysconf("SC_CLK_TCK")
CYCLES_PER_HOUR_AT_5M = 12


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one process (fields 14 and 15 of /proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def serve(kind: str, settings: dict, workdir: Path) -> subprocess.Popen[str]:
    config = workdir / f"{kind}.yaml"
    config.write_text(yaml.safe_dump(settings))
    proc = subprocess.Popen([sys.executable, str(ROOT / "cli.py"), "serve", kind, "--config",
                             str(config)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, cwd=ROOT)
    deadline = time.monotonic() + 60
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith(f"pacsim serve {kind}:"):
            return proc
        if proc.poll() is not None:
            break
    terminate(proc)
    raise SystemExit(f"pacsim serve {kind} did not start")


def measure(name: str, target: ProbeTarget, pids: list[int], receiver: ImageReceiver,
            phase: float, every: float) -> None:
    def cpu() -> float:
        return sum(cpu_seconds(pid) for pid in pids)

    time.sleep(2)  # let start-up work finish before the idle baseline
    idle_start = cpu()
    time.sleep(phase)
    idle = cpu() - idle_start
    runner = ProbeRunner(target, receiver=receiver)
    probed_start, own_start = cpu(), resource.getrusage(resource.RUSAGE_SELF)
    began = time.monotonic()
    outcomes: dict[str, int] = {}

    def count(results: list) -> None:
        for r in results:
            outcomes[r.outcome] = outcomes.get(r.outcome, 0) + 1

    cycles = runner.run(every, count=max(1, int(phase / every)), on_cycle=count)
    elapsed = time.monotonic() - began
    probed = cpu() - probed_start
    own_end = resource.getrusage(resource.RUSAGE_SELF)
    own = (own_end.ru_utime + own_end.ru_stime - own_start.ru_utime - own_start.ru_stime)
    extra = probed - idle * elapsed / phase
    per_cycle = max(extra, 0.0) / cycles
    per_hour = per_cycle * CYCLES_PER_HOUR_AT_5M
    print(f"{name:<8} idle {idle:.3f} CPU-s/{phase:.0f}s, probed {probed:.3f} CPU-s/"
          f"{elapsed:.0f}s ({cycles} cycles; outcomes {outcomes})")
    print(f"{name:<8} target CPU per probe cycle: {per_cycle * 1000:.1f} ms; at --every 5m: "
          f"{per_hour:.3f} CPU-s per hour = {per_hour / 3600:.5%} of one core; "
          f"prober's own CPU per cycle: {own / cycles * 1000:.1f} ms")


def builtin(args: argparse.Namespace, receiver: ImageReceiver, workdir: Path) -> None:
    arc_port, web_port, ris_port, hl7_port = (free_port() for _ in range(4))
    archive = serve("archive", {"port": arc_port, "dicomweb_port": web_port,
                                "storage_dir": str(workdir / "archive"),
                                "destinations": {PROBE_AE: list(receiver.address)}}, workdir)
    ris = serve("ris", {"dicom_port": ris_port, "hl7_port": hl7_port}, workdir)
    try:
        target = ProbeTarget("builtin", AeAddress(ae_title="PACSIM_ARC", host="127.0.0.1",
                                                  port=arc_port),
                             worklist=AeAddress(ae_title="PACSIM_RIS", host="127.0.0.1",
                                                port=ris_port),
                             hl7=("127.0.0.1", hl7_port),
                             dicomweb=f"http://127.0.0.1:{web_port}/dicom-web")
        measure("builtin", target, [archive.pid, ris.pid], receiver, args.phase, args.every)
    finally:
        terminate(archive)
        terminate(ris)


def orthanc(args: argparse.Namespace, receiver: ImageReceiver) -> None:
    from simulators.peers.orthanc import OrthancProcess, OrthancSettings
    with OrthancProcess(OrthancSettings(modalities={PROBE_AE: receiver.address},
                                        dicomweb=True)) as peer:
        target = ProbeTarget("orthanc", AeAddress(ae_title=peer.ae_title, host="127.0.0.1",
                                                  port=peer.dicom_port),
                             dicomweb=peer.dicomweb_url, rest=peer.rest_url)
        measure("orthanc", target, [peer._process.pid], receiver,  # type: ignore[union-attr]
                args.phase, args.every)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--phase", type=float, default=20.0, help="seconds idle, then probed")
    parser.add_argument("--every", type=float, default=2.0, help="seconds between cycles")
    parser.add_argument("--orthanc", action="store_true", help="also measure Orthanc")
    args = parser.parse_args()
    if not 1 <= args.phase <= 600 or not 0.2 <= args.every <= args.phase:
        parser.error("--phase must be 1..600 s and --every 0.2 s..--phase")
    with tempfile.TemporaryDirectory(prefix="pacsim-probe-overhead-") as tmp:
        receiver = ImageReceiver().start()
        try:
            builtin(args, receiver, Path(tmp))
            if args.orthanc:
                orthanc(args, receiver)
        finally:
            receiver.stop()


if __name__ == "__main__":
    main()
