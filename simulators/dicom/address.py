"""``AeAddress``: the one type for "a DICOM peer", and ``AE@HOST:PORT``, its spelling.

Why one type: a peer used to be described seven ways (``DicomPeer(host, port, ae)``,
``Endpoint(host, port, ae)``, ``AeAddress(ae, host, port)``, ``(host, port, ae)``
tuples...) with different field orders, so a positional call could silently swap an
AE title and a host. :class:`AeAddress` is keyword-only for that reason: every
construction names its fields. Composite descriptions of a target with several
endpoints (the site's ``TargetEndpoint``, the probes' ``ProbeTarget``...) hold
``AeAddress`` values for their DICOM endpoints instead of repeating the fields;
``tests/unit/test_one_peer_type.py`` fails if a second ``{host, port, ae_title}``
record appears.

Why one parser: `pacsim migrate --source/--target`, `pacsim probe --target/--worklist`,
`pacsim faults run --target`, the scenario's external targets and actor config files
all take the same spelling, and users should get the same answer to the same typo
wherever they make it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping

from simulators.common.fields import ae_title_problem
from simulators.errors import ConfigError
# The one TLS settings type; it lives in ``simulators.tls`` because MLLP uses it too.
from simulators.tls import TlsSettings

# An AE title is 1-16 characters without '@'; the host a name, an IPv4 address or a
# bracketed IPv6 address.
_AE_ADDRESS = re.compile(
    r"^(?P<ae>[^@\s]{1,16})@(?P<host>[^:@\s]+|\[[0-9a-fA-F:]+\]):(?P<port>\d{1,5})$")


@dataclass(frozen=True, slots=True, kw_only=True)
class AeAddress:
    """A DICOM application entity on the network: its AE title, host and port.

    Keyword-only on purpose (see the module docstring). ``tls``: how to secure the
    association (:class:`~simulators.tls.TlsSettings`); None means plain TCP.
    """

    ae_title: str
    host: str
    port: int
    tls: TlsSettings | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.port, int) or isinstance(self.port, bool) \
                or not 0 < self.port <= 65535:
            raise ConfigError(f"port must be 1-65535, got {self.port!r}", ae_title=self.ae_title,
                              host=self.host)
        problem = ae_title_problem(self.ae_title)
        if problem:
            raise ConfigError(problem, host=self.host, port=self.port)
        if not isinstance(self.host, str) or not self.host.strip():
            raise ConfigError("host must not be empty", ae_title=self.ae_title, port=self.port)

    @property
    def address(self) -> str:
        """``host:port``: the ``peer`` of exchange events and error contexts."""
        return f"{self.host}:{self.port}"

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host  # IPv6 stays parseable
        return f"{self.ae_title}@{host}:{self.port}"

    @classmethod
    def from_config(cls, value: Any, field: str = "peer") -> AeAddress:
        """A peer as a config file or environment variable writes it.

        Accepted: an ``AeAddress``; ``"AE@HOST:PORT"``; a mapping with ``ae_title``,
        ``host`` and ``port`` (and optionally ``tls``); or the three-item list
        ``[host, port, AE title]`` that actor YAML files used before this type
        existed (that order only, so old site files keep working).
        :func:`simulators.config.build_config` calls this for every field typed
        ``AeAddress``.
        """
        if isinstance(value, AeAddress):
            return value
        if isinstance(value, str):
            return parse_ae_address(value, field)
        if isinstance(value, Mapping):
            unknown = sorted(set(value) - {"ae_title", "host", "port", "tls"})
            missing = sorted({"ae_title", "host", "port"} - set(value))
            if unknown or missing:
                raise ConfigError(f"{field}: a peer has ae_title, host and port"
                                  + (f"; unknown {', '.join(unknown)}" if unknown else "")
                                  + (f"; missing {', '.join(missing)}" if missing else ""),
                                  field=field)
            tls = value.get("tls")
            if tls is not None:
                tls = TlsSettings.from_config(tls, f"{field}.tls")
            return cls(ae_title=str(value["ae_title"]), host=str(value["host"]),
                       port=_port(value["port"], field), tls=tls)
        if isinstance(value, (list, tuple)) and len(value) == 3:
            host, port, ae_title = value
            return cls(ae_title=str(ae_title), host=str(host), port=_port(port, field))
        raise ConfigError(f"{field}: expected AE@HOST:PORT, got {value!r}", field=field)


def _port(value: Any, field: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{field}: port must be a number, got {value!r}", field=field) from None


def parse_ae_address(text: str, option: str) -> AeAddress:
    """``AE@HOST:PORT`` -> :class:`AeAddress`; ConfigError naming ``option`` otherwise."""
    match = _AE_ADDRESS.match(text.strip())
    if match is None:
        raise ConfigError(f"{option}: expected AE@HOST:PORT, got {text!r}", field=option)
    port = int(match["port"])
    if not 0 < port <= 65535:
        raise ConfigError(f"{option}: port must be 1-65535, got {port}", field=option)
    return AeAddress(ae_title=match["ae"], host=match["host"].strip("[]"), port=port)


__all__ = ["AeAddress", "TlsSettings", "parse_ae_address"]
