"""A timed DICOMweb client: what a viewer (or a go-live probe) measures when it loads a study.

Built on dicomweb-client's public API (``search_for_*``, ``iter_study``) so what
is measured is what a real DICOMweb viewer library does. Two measurements need a
little help from ``requests``: the bytes on the wire (a response hook counts the
chunks dicomweb-client reads, so nothing is buffered twice) and the time to the
first image (``iter_study`` streams, so the first dataset arrives while the rest
of the study is still on the wire). Each call is one exchange event
(``dicomweb.qido``, ``dicomweb.wado``).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import Any, Callable

import requests
from dicomweb_client.api import DICOMwebClient

from simulators.errors import ProtocolError
from simulators.events import EventBus

CHUNK_SIZE = 64 * 1024


@dataclass(frozen=True, slots=True)
class LoadTiming:
    """One study load as the physician waits for it."""

    via: str
    study_uid: str
    instances: int
    bytes: int
    first_image_s: float | None
    total_s: float
    status: str = "success"

    @property
    def mb_per_s(self) -> float:
        return self.bytes / 1e6 / self.total_s if self.total_s > 0 else 0.0

    @property
    def ok(self) -> bool:
        return self.status == "success"

    def as_dict(self) -> dict[str, Any]:
        """Plain values for scenario observations and probe stores."""
        return {**asdict(self), "mb_per_s": round(self.mb_per_s, 3)}


class _ByteCounter:
    """A ``requests`` response hook that counts body bytes as the caller reads them."""

    def __init__(self) -> None:
        self.total = 0

    def __call__(self, response: requests.Response, *args: Any, **kwargs: Any) -> None:
        original: Callable[..., Any] = response.iter_content

        def counting(*a: Any, **kw: Any) -> Any:
            for chunk in original(*a, **kw):
                self.total += len(chunk)
                yield chunk

        response.iter_content = counting  # type: ignore[method-assign]


def make_client(url: str, counter: _ByteCounter | None = None,
                timeout: float = 30.0) -> DICOMwebClient:
    session = requests.Session()
    if counter is not None:
        session.hooks["response"].append(counter)
    session.request = _with_timeout(session.request, timeout)  # type: ignore[method-assign]
    return DICOMwebClient(url, session=session, chunk_size=CHUNK_SIZE)


def _with_timeout(request: Callable[..., Any], timeout: float) -> Callable[..., Any]:
    """requests has no session-wide timeout; a hung server must not hang a step."""
    def bounded(*args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("timeout", timeout)
        return request(*args, **kwargs)
    return bounded


def _peer(url: str) -> str:
    return url.split("//", 1)[-1].split("/", 1)[0]


def qido_studies(url: str, filters: dict[str, Any], *, events: EventBus, actor: str,
                 timeout: float = 30.0) -> list[dict[str, Any]]:
    """QIDO-RS ``/studies`` with attribute filters; DICOM JSON objects as returned."""
    with events.exchange("dicomweb.qido", actor, _peer(url), level="study") as event:
        try:
            found = make_client(url, timeout=timeout).search_for_studies(
                search_filters=filters, get_remaining=True)
        except requests.RequestException as exc:
            event.outcome, event.status = "failed", _http_status(exc)
            raise ProtocolError(f"QIDO-RS search failed: {exc}", peer=_peer(url)) from exc
        event.status, event.detail["matches"] = "200", len(found)
    return found


def wado_load(url: str, study_uid: str, *, events: EventBus, actor: str,
              timeout: float = 60.0) -> LoadTiming:
    """Retrieve a whole study by WADO-RS, timing the first and the last instance."""
    counter = _ByteCounter()
    client = make_client(url, counter, timeout)
    count, first = 0, None
    with events.exchange("dicomweb.wado", actor, _peer(url), study_uid=study_uid) as event:
        began = time.perf_counter()
        try:
            for _ in client.iter_study(study_uid):
                count += 1
                if first is None:
                    first = time.perf_counter() - began
        except requests.RequestException as exc:
            status = _http_status(exc)
            event.outcome, event.status = "failed", status
            return LoadTiming("wado", study_uid, count, counter.total, first,
                              time.perf_counter() - began, status=f"http {status}")
        total = time.perf_counter() - began
        event.status, event.bytes = "200", counter.total
        event.detail.update(instances=count, first_image_s=first)
    return LoadTiming("wado", study_uid, count, counter.total, first, total)


def _http_status(exc: requests.RequestException) -> str:
    response = getattr(exc, "response", None)
    return str(response.status_code) if response is not None else "no response"


__all__ = ["LoadTiming", "make_client", "qido_studies", "wado_load"]
