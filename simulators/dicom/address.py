"""``AE@HOST:PORT``, the way users name a DICOM peer on a command line.

Why one parser: `pacsim migrate --source/--target`, `pacsim probe --target/--worklist`
and the scenario's external targets all take the same spelling, and users should get
the same answer to the same typo wherever they make it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from simulators.errors import ConfigError

# An AE title is 1-16 characters without '@'; the host a name, an IPv4 address or a
# bracketed IPv6 address.
_AE_ADDRESS = re.compile(
    r"^(?P<ae>[^@\s]{1,16})@(?P<host>[^:@\s]+|\[[0-9a-fA-F:]+\]):(?P<port>\d{1,5})$")


@dataclass(frozen=True, slots=True)
class AeAddress:
    """A DICOM application entity on the network."""

    ae_title: str
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.ae_title}@{self.host}:{self.port}"


def parse_ae_address(text: str, option: str) -> AeAddress:
    """``AE@HOST:PORT`` -> :class:`AeAddress`; ConfigError naming ``option`` otherwise."""
    match = _AE_ADDRESS.match(text.strip())
    if match is None:
        raise ConfigError(f"{option}: expected AE@HOST:PORT, got {text!r}", field=option)
    port = int(match["port"])
    if not 0 < port <= 65535:
        raise ConfigError(f"{option}: port must be 1-65535, got {port}", field=option)
    return AeAddress(match["ae"], match["host"].strip("[]"), port)


__all__ = ["AeAddress", "parse_ae_address"]
