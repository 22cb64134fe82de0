"""Where the probes go: the target's DICOM peer and the optional peers around it.

Why one frozen description: every probe family reads the same addresses, AE titles
and timeout, and the CLI, the built-in target and the tests build it in one place.
``label`` is the value of the ``target`` metric label, so it must stay short and
bounded (``builtin``, ``orthanc`` or the ``AE@HOST:PORT`` the user typed).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from simulators.dicom.address import AeAddress
from simulators.errors import ConfigError

#: The probe's own AE title (calling AE, and C-MOVE destination of its storage SCP).
PROBE_AE = "PACSIM_PROBE"
_HOSTPORT = re.compile(r"^(?P<host>[^:]+):(?P<port>\d{1,5})$")


def parse_hostport(text: str, option: str) -> tuple[str, int]:
    """``HOST:PORT`` -> (host, port); ConfigError naming the option otherwise."""
    match = _HOSTPORT.match(text.strip())
    if not match or not 0 <= int(match["port"]) <= 65535:
        raise ConfigError(f"{option} must be HOST:PORT", value=text)
    return match["host"], int(match["port"])


@dataclass(frozen=True, slots=True)
class ProbeTarget:
    """Everything the probes need to know about one target and its neighbours.

    ``store`` is the archive (echo, C-STORE, C-FIND, C-MOVE, C-GET); ``worklist``
    the MWL SCP (often the RIS, not the PACS); ``hl7`` the order filler's MLLP
    address; ``dicomweb`` the WADO-RS base URL; ``rest`` an Orthanc REST URL used
    only to delete the canary's studies afterwards. ``move_destination`` is the AE
    title the target knows our storage SCP by (it must be configured on the target).
    """

    label: str
    store: AeAddress
    worklist: AeAddress | None = None
    hl7: tuple[str, int] | None = None
    dicomweb: str | None = None
    rest: str | None = None
    calling_ae: str = PROBE_AE
    move_destination: str = PROBE_AE
    timeout: float = 10.0
    #: Seconds between two polls while waiting for an item to appear.
    poll_interval: float = 0.05

    def __post_init__(self) -> None:
        if self.timeout <= 0:
            raise ConfigError("the probe timeout must be positive", timeout=self.timeout)
        if not 0 < self.poll_interval < self.timeout:
            raise ConfigError("poll_interval must be positive and below the timeout",
                              poll_interval=self.poll_interval)


__all__ = ["ProbeTarget", "parse_hostport", "PROBE_AE"]
