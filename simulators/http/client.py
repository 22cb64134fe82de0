"""pacsim's one HTTP client: JSON to a service, a timeout on every call, pacsim errors.

Why one: the control API proxies, the sandbox CLI, the health probes and the Orthanc
helpers used http.client, urllib.request and requests side by side, each with its
own idea of timeouts and failures. Everything now goes through :class:`JsonClient`
(on requests, already installed for dicomweb-client), so:

* every call has a timeout (a peer that accepts and never answers cannot hang a run);
* a peer that cannot be reached, one that does not answer in time, and one that
  answers an error are three different pacsim errors a caller can tell apart
  (:class:`~simulators.errors.PeerUnreachable`, :class:`~simulators.errors.Timeout`,
  and the error the server's JSON error body names, :mod:`simulators.http.problem`);
* proxies from the environment (``HTTP_PROXY``) are ignored for loopback services:
  a corporate proxy cannot reach this machine's 127.0.0.1, and pacsim's own services
  live there. Other hosts (an Orthanc elsewhere) follow the environment as usual.

Each call uses its own short-lived session, so one client is safe to share between
threads (a requests.Session is not guaranteed to be).
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit

import requests
import urllib3.exceptions

from simulators.errors import ConfigError, PacsimError, PeerUnreachable, ProtocolError, Timeout
from simulators.http.problem import error_from_problem

#: Seconds a call may take unless its caller says otherwise.
DEFAULT_TIMEOUT = 10.0


@dataclass(frozen=True, slots=True)
class Answer:
    """One HTTP answer: the status and the body as JSON (``None`` when it is not)."""

    status: int
    body: Any
    text: str

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _refused(exc: BaseException) -> bool:
    """Whether a requests ConnectionError means "nobody there" (refused, no route,
    unknown name) rather than a connection that broke half-way."""
    seen: set[int] = set()
    todo: list[Any] = [exc]
    while todo:
        item = todo.pop()
        if item is None or id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, (urllib3.exceptions.NewConnectionError, ConnectionRefusedError)):
            return True
        if isinstance(item, BaseException):
            todo.extend([getattr(item, "reason", None), item.__cause__, item.__context__,
                         *item.args])
    return False


class JsonClient:
    """JSON over HTTP to the service at ``base_url`` (``http://host:port[/root]``).

    ``name`` says who the service is in error messages ("control API of ct1").
    ``exchange`` returns any answer and raises only when there is none;
    ``get``/``post``/``delete`` also turn an error answer into the pacsim error its
    body names and return the JSON of a successful one.
    """

    def __init__(self, base_url: str, *, timeout: float = DEFAULT_TIMEOUT,
                 name: str | None = None) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"not an HTTP URL: {base_url!r}")
        if timeout <= 0:
            raise ConfigError("an HTTP timeout must be a positive number of seconds",
                              timeout=timeout)
        self.base_url = base_url.rstrip("/")
        self.timeout = float(timeout)
        self.peer = parts.netloc
        self.name = name or self.peer
        self._trust_env = not _is_loopback(parts.hostname)

    def __repr__(self) -> str:
        return f"JsonClient({self.base_url!r}, timeout={self.timeout:g})"

    # ------------------------------------------------------------------ one call
    def exchange(self, method: str, path: str = "", *, json_body: Any = None,
                 data: bytes | str | None = None, timeout: float | None = None,
                 headers: dict[str, str] | None = None) -> Answer:
        """Send one request and return whatever the service answered.

        Raises PeerUnreachable when nobody answers at that address (refused, no
        route, unknown name), Timeout when the service does not connect or answer
        within ``timeout`` seconds, ProtocolError when the connection breaks
        mid-answer."""
        wait = self.timeout if timeout is None else float(timeout)
        url = self.base_url + path
        sent_headers = dict(headers or {})
        if json_body is not None:
            data = json.dumps(json_body, default=str).encode("utf-8")
            sent_headers.setdefault("Content-Type", "application/json")
        try:
            with requests.Session() as session:
                session.trust_env = self._trust_env
                reply = session.request(method, url, data=data, headers=sent_headers,
                                        timeout=wait, allow_redirects=False)
                content = reply.content
        except requests.Timeout:
            raise Timeout(f"{self.name} did not answer within {wait:g}s",
                            peer=self.peer, request=f"{method} {path or '/'}") from None
        except requests.ConnectionError as exc:
            if _refused(exc):
                raise PeerUnreachable(f"{self.name} cannot be reached",
                                      peer=self.peer) from None
            raise ProtocolError(f"{self.name}: the connection broke: {exc}",
                                peer=self.peer) from None
        except requests.RequestException as exc:
            raise ProtocolError(f"{self.name}: {type(exc).__name__}: {exc}",
                                peer=self.peer) from None
        # Decoded here, not by requests' charset guessing (slow on a large body):
        # JSON is UTF-8, and the text is only quoted in messages.
        try:
            text = content.decode(reply.encoding or "utf-8", errors="replace")
        except LookupError:  # a charset Python does not know
            text = content.decode("utf-8", errors="replace")
        try:
            body = json.loads(content) if content.strip() else None
        except ValueError:
            body = None
        return Answer(reply.status_code, body, text)

    def error_of(self, answer: Answer) -> PacsimError:
        """The pacsim error an error answer stands for: the one its JSON error body
        names, or a ProtocolError quoting the status (a foreign server, a proxy)."""
        if isinstance(answer.body, dict) and isinstance(answer.body.get("error"), dict):
            return error_from_problem(answer.body, status=answer.status, peer=self.peer)
        try:
            phrase = HTTPStatus(answer.status).phrase
        except ValueError:
            phrase = "unknown status"
        snippet = " ".join(answer.text.split())[:200]
        return ProtocolError(f"{self.name} answered HTTP {answer.status} {phrase}"
                             + (f": {snippet}" if snippet else ""),
                             peer=self.peer, status=answer.status)

    def call(self, method: str, path: str = "", *, json_body: Any = None,
             data: bytes | str | None = None, timeout: float | None = None,
             headers: dict[str, str] | None = None) -> Any:
        """One request whose answer must be a success; its JSON (``None`` if empty).

        An error answer raises the error it names (:meth:`error_of`); a success that
        is not JSON raises ProtocolError."""
        answer = self.exchange(method, path, json_body=json_body, data=data,
                               timeout=timeout, headers=headers)
        if not answer.ok:
            raise self.error_of(answer)
        if answer.body is None and answer.text.strip():
            raise ProtocolError(f"{self.name} answered HTTP {answer.status} without JSON",
                                peer=self.peer, status=answer.status)
        return answer.body

    def get(self, path: str = "", *, timeout: float | None = None) -> Any:
        return self.call("GET", path, timeout=timeout)

    def post(self, path: str = "", body: Any = None, *, data: bytes | str | None = None,
             timeout: float | None = None) -> Any:
        """POST ``body`` as JSON (or raw ``data``, e.g. Orthanc's text lookups)."""
        return self.call("POST", path, json_body=body if data is None else None, data=data,
                         timeout=timeout)

    def delete(self, path: str = "", *, timeout: float | None = None) -> Any:
        return self.call("DELETE", path, timeout=timeout)


def answers(url: str, *, timeout: float = 5.0) -> bool:
    """Whether ``url`` answers a GET with a 2xx status within ``timeout`` (a readiness
    probe: any failure, whatever its kind, is simply "not yet")."""
    try:
        return JsonClient(url, timeout=timeout).exchange("GET").ok
    except PacsimError:
        return False


__all__ = ["JsonClient", "Answer", "answers", "DEFAULT_TIMEOUT"]
