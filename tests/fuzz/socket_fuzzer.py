"""A bounded, loopback-only socket fuzzer for the RIS, archive and EHR listeners.

Why: the property tests prove each decoder keeps its contract; this proves the
*listeners* keep theirs when the damaged bytes arrive over real sockets, in every
timing (at once, dripped, cut off), many at a time. Each case takes a valid exchange
(:mod:`tests.fuzz.exchanges`), damages it (:mod:`tests.fuzz.mutations`: the whole
stream, or one PDU/frame of it), sends it and reads what comes back. After each
batch it checks, through the front door:

* liveness: C-ECHO answers 0x0000 on every DICOM listener, a valid ADT/ORU gets AA
  on every HL7 listener, QIDO-RS answers 200 on the archive's DICOMweb port, and a
  valid C-STORE to the archive is acknowledged 0x0000;
* resources stay bounded: RSS, open files and threads of this process (which is the
  servers' process) against the first batch's figures plus fixed allowances;
* no acknowledged instance is lost: every SOP instance the archive answered 0x0000
  to (the fuzz cases' own C-STORE-RSPs and STOW-RS responses included) is still
  indexed and readable;
* no listener logged an unexpected exception (the listeners' catch-alls log with a
  traceback: each such log record is a crash the catch-all hid) and no thread died
  of an uncaught one.

Only 127.0.0.1: the fuzzer refuses any other host. Bounded by ``seconds`` (and per
case by short read timeouts), so it always ends.
"""

from __future__ import annotations

import json
import logging
import os
import random
import select
import socket
import struct
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import pydicom
from pynetdicom import AE

from simulators.dicom.fast import raw
from simulators.hl7.er7 import ack_code
from simulators.hl7.mllp import MllpClient
from tests.fuzz import exchanges
from tests.fuzz.mutations import MUTATORS, mutate

LOOPBACK = "127.0.0.1"
_PDU_HEADER = struct.Struct(">BBI")


@dataclass(frozen=True)
class Target:
    """One listener: where it is, what it speaks, and which exchanges it takes."""

    name: str
    port: int
    kind: str  # "dicom" | "hl7" | "http"
    make: Callable[[random.Random], exchanges.Exchange]
    ae_title: str = ""


@dataclass
class Limits:
    """Allowances over the first batch's figures (why generous: the store's page
    cache, thread pools warming up and sockets in close-wait are not leaks)."""

    rss_growth_mb: float = 200.0
    fd_growth: int = 64
    thread_growth: int = 32


@dataclass
class Sample:
    at: float
    rss_mb: float
    open_fds: int
    threads: int


@dataclass
class FuzzReport:
    seed: int
    seconds: float
    cases: int = 0
    batches: int = 0
    by_target: dict[str, int] = field(default_factory=dict)
    by_operator: dict[str, int] = field(default_factory=dict)
    by_mode: dict[str, int] = field(default_factory=dict)
    acknowledged: int = 0
    failures: list[str] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def process_sample(start: float) -> Sample:
    """RSS from /proc/self/status (psutil is not a dependency), fds from /proc/self/fd."""
    rss_kb = 0
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss_kb = int(line.split()[1])
    return Sample(round(time.monotonic() - start, 2), round(rss_kb / 1024, 1),
                  len(os.listdir("/proc/self/fd")), threading.active_count())


class _CrashLog(logging.Handler):
    """Collects log records carrying a traceback from pacsim's listeners."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.exc_info and record.name.startswith("simulators"):
            self.records.append(f"{record.name}: {record.getMessage()} "
                                f"({record.exc_info[0].__name__ if record.exc_info[0] else '?'})")


def acknowledged_stows(reply: bytes) -> list[str]:
    """SOP Instance UIDs a STOW-RS response (200 or 202) lists as stored."""
    head, _, body = reply.partition(b"\r\n\r\n")
    status = head.split(b" ", 2)[1:2]
    if status not in ([b"200"], [b"202"]):
        return []
    try:
        document = json.loads(body.decode("utf-8"))
        items = document.get("00081199", {}).get("Value", [])
        return [str(item["00081155"]["Value"][0]) for item in items]
    except (ValueError, KeyError, IndexError, AttributeError, TypeError):
        return []


def acknowledged_stores(reply: bytes) -> list[str]:
    """SOP Instance UIDs of C-STORE-RSPs with status 0x0000 in a DICOM reply stream."""
    uids: list[str] = []
    assembler = raw.RawAssembler(1 << 20)
    offset = 0
    while offset + 6 <= len(reply):
        pdu_type, _, length = _PDU_HEADER.unpack_from(reply, offset)
        pdu = reply[offset:offset + 6 + length]
        offset += 6 + length
        if pdu_type != 0x04 or len(pdu) < 6 + length:
            continue
        try:
            for message in assembler.feed(pdu):
                if message.command_field == 0x8001 and message.status == 0x0000:
                    uids.append(message.text(0x1000))
        except Exception:  # noqa: BLE001 - our own reply parsing: not the server's fault
            break
    return uids


class SocketFuzzer:
    """Runs batches of damaged exchanges against ``targets`` and checks after each."""

    def __init__(self, targets: list[Target], *, archive_store: Callable[[], object],
                 archive_port: int, archive_ae: str, seed: int = 1, batch_size: int = 80,
                 parallel: int = 8, limits: Limits | None = None) -> None:
        self.targets = targets
        self.archive_store = archive_store
        self.archive_port, self.archive_ae = archive_port, archive_ae
        self.rng = random.Random(seed)
        self.seed, self.batch_size, self.parallel = seed, batch_size, parallel
        self.limits = limits or Limits()
        self.acknowledged: set[str] = set()
        self._checked: set[str] = set()

    # -- one case ------------------------------------------------------------------
    def _damage(self, exchange: exchanges.Exchange) -> tuple[bytes, list[str]]:
        if self.rng.random() < 0.5 and len(exchange.chunks) > 1:
            index = self.rng.randrange(len(exchange.chunks))
            chunks = list(exchange.chunks)
            chunks[index], names = mutate(chunks[index], self.rng)
            return b"".join(chunks), [f"{n}@{index}" for n in names]
        return mutate(exchange.data, self.rng)

    def _send(self, target: Target, data: bytes, mode: str) -> bytes:
        """Send ``data`` in ``mode``; return whatever the listener answered (bounded)."""
        reply = b""
        with socket.create_connection((LOOPBACK, target.port), timeout=2) as sock:
            try:
                if mode == "drip":
                    for start in range(0, min(len(data), 2048), 97):
                        sock.sendall(data[start:start + 97])
                        time.sleep(0.002)
                    sock.sendall(data[2048:])
                elif mode == "twice":
                    sock.sendall(data + data)
                else:
                    sock.sendall(data)
                if mode == "half-close":
                    sock.shutdown(socket.SHUT_WR)
                deadline = time.monotonic() + (0.4 if target.kind == "hl7" else 0.6)
                while time.monotonic() < deadline and len(reply) < 1 << 20:
                    ready, _, _ = select.select([sock], [], [], max(0.0, deadline - time.monotonic()))
                    if not ready:
                        break
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    reply += chunk
            except OSError:
                pass  # the listener closed on us: a fine answer to garbage
        return reply

    def prepare_case(self) -> tuple[Target, exchanges.Exchange, bytes, list[str], str]:
        """Draw one case from the seeded generator (sequentially: replayable)."""
        target = self.rng.choice(self.targets)
        exchange = target.make(self.rng)
        data, operators = self._damage(exchange)
        mode = self.rng.choice(["burst", "burst", "drip", "half-close", "twice"])
        return target, exchange, data, operators, mode

    def run_batch(self, report: FuzzReport) -> None:
        """``batch_size`` cases, ``parallel`` connections at a time (listeners see
        damaged exchanges concurrently, as they would from a busy network)."""
        cases = [self.prepare_case() for _ in range(self.batch_size)]
        with ThreadPoolExecutor(self.parallel, thread_name_prefix="fuzz") as pool:
            replies = list(pool.map(lambda case: self._send(case[0], case[2], case[4]), cases))
        for (target, exchange, _, operators, mode), reply in zip(cases, replies):
            if target.kind == "dicom":
                self.acknowledged.update(acknowledged_stores(reply))
            elif target.kind == "http":
                self.acknowledged.update(acknowledged_stows(reply))
            report.cases += 1
            key = f"{target.name}:{exchange.name}"
            report.by_target[key] = report.by_target.get(key, 0) + 1
            report.by_mode[mode] = report.by_mode.get(mode, 0) + 1
            for name in operators:
                base = name.split("@")[0]
                report.by_operator[base] = report.by_operator.get(base, 0) + 1

    # -- checks after a batch ---------------------------------------------------------
    def _echo(self, target: Target) -> int:
        ae = AE(ae_title="FUZZCHECK")
        ae.add_requested_context(exchanges.VERIFICATION)
        ae.add_requested_context(exchanges.CT_STORAGE, exchanges.EXPLICIT)
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 10
        assoc = ae.associate(LOOPBACK, target.port, ae_title=target.ae_title)
        if not assoc.is_established:
            return -1
        try:
            status = assoc.send_c_echo()
            return int(status.Status) if "Status" in status else -2
        finally:
            assoc.release()

    def _store_control(self) -> str | None:
        ae = AE(ae_title="FUZZCHECK")
        ae.add_requested_context(exchanges.CT_STORAGE, exchanges.EXPLICIT)
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 10
        assoc = ae.associate(LOOPBACK, self.archive_port, ae_title=self.archive_ae)
        if not assoc.is_established:
            return "control C-STORE: association refused"
        try:
            ds = exchanges.ct_instance()
            status = assoc.send_c_store(ds)
            if "Status" not in status or int(status.Status) != 0:
                return f"control C-STORE answered {status.get('Status', 'nothing')}"
            self.acknowledged.add(str(ds.SOPInstanceUID))
            return None
        finally:
            assoc.release()

    def _http_alive(self, target: Target) -> int:
        """QIDO-RS /studies over a fresh connection: the HTTP status (200 = alive)."""
        with socket.create_connection((LOOPBACK, target.port), timeout=10) as sock:
            sock.sendall(b"GET /dicom-web/studies?limit=1 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                         b"Accept: application/dicom+json\r\nConnection: close\r\n\r\n")
            reply = b""
            while len(reply) < 1 << 20:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                reply += chunk
        parts = reply.split(b" ", 2)
        return int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else -1

    def _hl7_ack(self, target: Target) -> str:
        exchange = target.make(self.rng)
        text = exchange.chunks[-1][1:-2].decode("utf-8")
        client = MllpClient(LOOPBACK, target.port, timeout=10, name="fuzz-check")
        try:
            return ack_code(client.send(text))
        finally:
            client.close()

    def _lost(self) -> list[str]:
        """Acknowledged instances no longer indexed or no longer readable."""
        uids = sorted(self.acknowledged)
        found = self.archive_store().lookup(uids)  # type: ignore[attr-defined]
        lost = [uid for uid in uids if uid not in found]
        for uid in uids:
            if uid in found and uid not in self._checked:
                path = Path(found[uid].path)
                path = path if path.is_absolute() else Path(self.archive_store().root) / path  # type: ignore[attr-defined]
                try:
                    ds = pydicom.dcmread(path, stop_before_pixels=True)
                    if str(ds.SOPInstanceUID) != uid:
                        lost.append(f"{uid} (file holds {ds.SOPInstanceUID})")
                        continue
                except Exception as exc:  # noqa: BLE001 - any unreadable file is a loss
                    lost.append(f"{uid} (unreadable: {type(exc).__name__})")
                    continue
                self._checked.add(uid)
        return lost

    def check(self, report: FuzzReport, baseline: Sample | None, start: float) -> Sample:
        batch = report.batches
        for target in self.targets:
            try:
                if target.kind == "dicom":
                    status = self._echo(target)
                    if status != 0:
                        report.failures.append(f"batch {batch}: {target.name} C-ECHO -> {status}")
                elif target.kind == "http":
                    status = self._http_alive(target)
                    if status != 200:
                        report.failures.append(f"batch {batch}: {target.name} QIDO -> {status}")
                else:
                    code = self._hl7_ack(target)
                    if code != "AA":
                        report.failures.append(f"batch {batch}: {target.name} ACK {code!r}")
            except Exception as exc:  # noqa: BLE001 - a dead listener is the finding
                report.failures.append(f"batch {batch}: {target.name} unreachable: {exc!r}")
        problem = self._store_control()
        if problem:
            report.failures.append(f"batch {batch}: archive {problem}")
        for uid in self._lost():
            report.failures.append(f"batch {batch}: acknowledged instance lost: {uid}")
        sample = self._settled_sample(baseline, start)
        report.samples.append(sample)
        if baseline is not None:
            if sample.rss_mb > baseline.rss_mb + self.limits.rss_growth_mb:
                report.failures.append(f"batch {batch}: RSS {sample.rss_mb} MB "
                                       f"(first batch {baseline.rss_mb} MB)")
            if sample.open_fds > baseline.open_fds + self.limits.fd_growth:
                report.failures.append(f"batch {batch}: {sample.open_fds} open files "
                                       f"(first batch {baseline.open_fds})")
            if sample.threads > baseline.threads + self.limits.thread_growth:
                report.failures.append(f"batch {batch}: {sample.threads} threads "
                                       f"(first batch {baseline.threads})")
        return sample

    def _settled_sample(self, baseline: Sample | None, start: float) -> Sample:
        """Sockets of the last cases close asynchronously: give them up to 5 s."""
        sample = process_sample(start)
        for _ in range(50):
            if baseline is None or sample.open_fds <= baseline.open_fds + self.limits.fd_growth:
                break
            time.sleep(0.1)
            sample = process_sample(start)
        return sample

    # -- the run ------------------------------------------------------------------
    def run(self, seconds: float) -> FuzzReport:
        report = FuzzReport(seed=self.seed, seconds=seconds)
        crashes = _CrashLog()
        logging.getLogger().addHandler(crashes)
        previous_hook = threading.excepthook

        def thread_died(args: threading.ExceptHookArgs) -> None:
            # a listener thread killed by an exception nobody caught is a crash too
            crashes.records.append(f"thread {args.thread.name if args.thread else '?'} died: "
                                   f"{args.exc_type.__name__}: {args.exc_value}")
            previous_hook(args)

        threading.excepthook = thread_died
        start = time.monotonic()
        baseline: Sample | None = None
        try:
            while time.monotonic() - start < seconds:
                self.run_batch(report)
                report.batches += 1
                sample = self.check(report, baseline, start)
                baseline = baseline or sample
                for record in crashes.records:
                    report.failures.append(f"batch {report.batches}: logged crash: {record}")
                crashes.records.clear()
                if len(report.failures) > 20:
                    break  # enough to act on; the rest would repeat
        finally:
            logging.getLogger().removeHandler(crashes)
            threading.excepthook = previous_hook
        report.acknowledged = len(self.acknowledged)
        return report


__all__ = ["SocketFuzzer", "Target", "Limits", "FuzzReport", "Sample", "process_sample",
           "acknowledged_stores", "acknowledged_stows", "MUTATORS"]
