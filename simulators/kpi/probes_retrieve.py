"""Image load probes: the canary study retrieved by C-MOVE, C-GET and WADO-RS.

Each reports three figures a viewer user feels: time to the first byte (the first
image starts arriving), time to the last byte (the study is complete, = the
result's ``seconds``) and MB/s over the whole load (10^6 bytes per second).

* C-MOVE: the target opens a second association to the probe's own storage SCP
  (:class:`ImageReceiver`, the asyncio acceptor also used by the archive), so the
  target must know the probe's AE title and address as a move destination.
* C-GET: images come back on the same association (SCP role selection for the
  storage classes, as getscu does).

Both speak through pacsim's one Q/R SCU (:class:`~simulators.dicom.qrscu.QrClient`),
which times the request and the C-GET arrivals; the clock runs from the request to
its final response, the association set-up excluded. A retrieve that ran out of
time says "timed out", which :func:`~simulators.kpi.result.measure` counts as a
timeout.
* WADO-RS: one ``GET {base}/studies/{uid}`` streamed with ``requests``; "first byte"
  is the first body chunk, so HTTP header latency is included.
"""

from __future__ import annotations

import socket
import threading
import time

import requests
from pynetdicom import ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts
from urllib3.exceptions import ReadTimeoutError

from simulators.dicom.fast.server import DimseRequest, FastServer, ServerSettings, SupportedContext
from simulators.dicom.qrscu import QrClient, RetrieveResult
from simulators.errors import NotMeasured, ProbeTimeout, ProtocolError, StatusError
from simulators.events import EventBus
from simulators.kpi.target import PROBE_AE, ProbeTarget

MEGABYTE = 1_000_000
_CHUNK = 65_536


class _Arrivals:
    """First arrival time and byte count of the images of one retrieve (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.first: float | None = None
        self.bytes = 0
        self.images = 0

    def add(self, size: int) -> None:
        now = time.perf_counter()
        with self._lock:
            if self.first is None:
                self.first = now
            self.bytes += size
            self.images += 1


def load_figures(started: float, first: float | None, finished: float, size: int,
                 images: int) -> tuple[float, dict[str, float]]:
    """(seconds to last byte, figures) for one image load; ProtocolError when nothing came."""
    if first is None or size == 0:
        raise ProtocolError("the retrieve finished without delivering any image")
    seconds = finished - started
    figures = {"first_byte_seconds": first - started, "bytes": float(size),
               "mb_per_s": size / MEGABYTE / max(seconds, 1e-9)}
    if images:
        figures["images"] = float(images)
    return seconds, figures


#: The transfer syntaxes a C-GET probe accepts images in (implicit, explicit, deflated
#: little endian), as getscu proposes them.
GET_SYNTAXES = tuple(ALL_TRANSFER_SYNTAXES[:3])


def _client(target: ProbeTarget, events: EventBus | None) -> QrClient:
    return QrClient(target.store, target.calling_ae, events, "probe", target.timeout)


def _reachable(host: str) -> str:
    """The address to register: a wildcard listener is reached at this host's name."""
    return socket.gethostname() if host in ("0.0.0.0", "::", "") else host


def _checked(result: RetrieveResult, what: str) -> tuple[float, float]:
    """(request sent, final response) of a successful retrieve; ProtocolError otherwise."""
    if result.status != 0x0000:
        raise StatusError(f"{what} answered status 0x{result.status:04X}",
                          status=result.status)
    assert result.sent_at is not None and result.done_at is not None
    return result.sent_at, result.done_at


class ImageReceiver:
    """The probe's storage SCP for C-MOVE: counts bytes, stores nothing."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, ae_title: str = PROBE_AE,
                 events: EventBus | None = None) -> None:
        contexts = tuple(SupportedContext(cx.abstract_syntax, tuple(ALL_TRANSFER_SYNTAXES))
                         for cx in AllStoragePresentationContexts)
        self.server = FastServer(ServerSettings(ae_title=ae_title, host=host, port=port,
                                                contexts=contexts, max_associations=8,
                                                workers=1), events=events, actor="probe-scp")
        self.server.handle("C-STORE", self._on_store)
        self.ae_title = ae_title
        self._current = _Arrivals()

    async def _on_store(self, request: DimseRequest) -> int:
        size = len(request.data)
        request.event.bytes = size
        self._current.add(size)
        return 0x0000

    def begin(self) -> _Arrivals:
        """Start counting a new retrieve (probes run one at a time)."""
        self._current = _Arrivals()
        return self._current

    @property
    def address(self) -> tuple[str, int]:
        return self.server.settings.host, self.server.port

    def start(self) -> "ImageReceiver":
        self.server.start()
        return self

    def stop(self) -> None:
        self.server.stop()


def load_by_move(target: ProbeTarget, receiver: ImageReceiver | None, study_uid: str,
                 events: EventBus | None = None) -> tuple[float, dict[str, float]]:
    """C-MOVE the study to our receiver; times from the C-MOVE request to its final response."""
    if receiver is None:
        raise NotMeasured("not measured: no storage SCP for C-MOVE")
    arrivals = receiver.begin()  # nothing arrives before the request is sent
    result = _client(target, events).move({"StudyInstanceUID": study_uid},
                                          target.move_destination, study_uid=study_uid)
    if result.status != 0x0000:  # most often: the target does not know our AE
        host, port = receiver.address
        raise StatusError(
            f"C-MOVE answered status 0x{result.status:04X}, {arrivals.images} image(s) "
            f"arrived: register AE {target.move_destination} at {_reachable(host)}:{port} on "
            "the target as a C-MOVE destination (or use --probes load_cget)",
            status=result.status)
    started, finished = _checked(result, "C-MOVE")
    return load_figures(started, arrivals.first, finished, arrivals.bytes, arrivals.images)


def load_by_get(target: ProbeTarget, study_uid: str, sop_classes: list[str],
                events: EventBus | None = None) -> tuple[float, dict[str, float]]:
    """C-GET the study; the images arrive as C-STORE sub-operations on our association."""
    result = _client(target, events).get({"StudyInstanceUID": study_uid}, sop_classes,
                                         transfer_syntaxes=GET_SYNTAXES, study_uid=study_uid)
    started, finished = _checked(result, "C-GET")
    return load_figures(started, result.first_arrival_at, finished, result.bytes,
                        len(result.arrivals))


def load_by_wado(target: ProbeTarget, study_uid: str) -> tuple[float, dict[str, float]]:
    """WADO-RS retrieve of the whole study, streamed; bytes are the multipart body."""
    if not target.dicomweb:
        raise NotMeasured("not measured: no DICOMweb URL configured (--dicomweb URL)")
    url = f"{target.dicomweb.rstrip('/')}/studies/{study_uid}"
    headers = {"Accept": 'multipart/related; type="application/dicom"; transfer-syntax=*'}
    started = time.perf_counter()
    deadline = started + target.timeout
    first: float | None = None
    size = 0
    try:
        with requests.get(url, headers=headers, stream=True, timeout=target.timeout) as reply:
            if reply.status_code != 200:
                raise ProtocolError(f"WADO-RS answered HTTP {reply.status_code}", url=url)
            for chunk in reply.iter_content(_CHUNK):
                if first is None:
                    first = time.perf_counter()
                size += len(chunk)
                if time.perf_counter() > deadline:
                    raise ProbeTimeout(f"WADO-RS study not complete within {target.timeout:g}s")
    except requests.Timeout as exc:
        raise ProbeTimeout(f"WADO-RS timed out: {exc}") from exc
    except requests.ConnectionError as exc:
        # requests reports a body that stalls mid-stream (iter_content) as a
        # ConnectionError around urllib3's ReadTimeoutError: still a timeout
        if exc.args and isinstance(exc.args[0], ReadTimeoutError):
            raise ProbeTimeout(f"WADO-RS timed out: {exc}") from exc
        raise ProtocolError(f"WADO-RS request failed: {exc}", url=url) from exc
    except requests.RequestException as exc:
        raise ProtocolError(f"WADO-RS request failed: {exc}", url=url) from exc
    return load_figures(started, first, time.perf_counter(), size, 0)


__all__ = ["ImageReceiver", "load_by_move", "load_by_get", "load_by_wado", "load_figures"]
