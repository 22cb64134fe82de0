"""Where a load run sends its traffic, and the rule that keeps it on this machine.

A load generator pointed at the wrong address is an attack on a hospital. So every
peer of a load run must be a loopback address unless the run explicitly allows an
external target; the check runs before the first connection is opened.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass

from simulators.dicom.address import AeAddress
from simulators.errors import ConfigError

_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})

@dataclass(frozen=True, slots=True)
class LoadTarget:
    """The peers a virtual modality talks to; ``None`` disables that transaction.

    ``worklist`` and ``mpps`` are the RIS (or a target that takes them), ``store`` the
    archive under test, ``hl7`` the order filler's MLLP listener (new orders).
    """

    worklist: AeAddress | None = None
    mpps: AeAddress | None = None
    store: AeAddress | None = None
    hl7: tuple[str, int] | None = None

    def hosts(self) -> list[str]:
        peers = [p.host for p in (self.worklist, self.mpps, self.store) if p is not None]
        return peers + ([self.hl7[0]] if self.hl7 else [])


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and names that resolve only to them."""
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
    except OSError:
        return False
    return bool(addresses) and all(ipaddress.ip_address(a.split("%")[0]).is_loopback
                                   for a in addresses)


def check_target(target: LoadTarget, *, allow_external: bool) -> None:
    """ConfigError unless every peer is loopback (or external traffic is allowed)."""
    if not target.hosts():
        raise ConfigError("the load run has no peer to talk to")
    if allow_external:
        return
    outside = sorted({host for host in target.hosts() if not is_loopback(host)})
    if outside:
        raise ConfigError("load traffic refused: target is not on loopback; declare an "
                          "external target and set load.allow_external: true to load it",
                          hosts=",".join(outside))


__all__ = ["LoadTarget", "is_loopback", "check_target"]
