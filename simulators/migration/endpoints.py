"""Where a migration reads from and writes to: the legacy source and the new target.

Why one module: the two ends depend on each other at start-up. C-MOVE makes the
legacy send to the target's AE title, so a seeded directory served by pacsim must
know the target's address, and an Orthanc target must know the legacy's AE before
it accepts its stores. Starting them in the right order, with free ports on
loopback, is this module's only job; the mover and the validator just get peers.

Spec syntax (CLI and scenario steps): a source is ``DIR`` (a seeded archive that
pacsim serves itself with the existing :class:`Archive` actor) or
``AE@HOST:PORT``; a target is ``builtin``, ``orthanc`` or ``AE@HOST:PORT``.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from simulators.actors.archive import Archive, ArchiveConfig
from simulators.dicom.address import AeAddress, parse_ae_address
from simulators.errors import ConfigError
from simulators.events import EventBus
from simulators.peers.orthanc import OrthancProcess, OrthancSettings
from simulators.peers.process import free_port

#: Our own AE titles: the legacy archive pacsim serves, the built-in target, and the
#: migration tool itself (calls C-MOVE/C-GET/C-FIND and relays C-STOREs).
LEGACY_AE = "LEGACY_PACS"
BUILTIN_TARGET_AE = "PACSIM_NEW"
ORTHANC_TARGET_AE = "ORTHANC"
MIGRATOR_AE = "PACSIM_MIGRATE"


def is_directory_source(spec: str) -> bool:
    return "@" not in spec


def check_source_spec(spec: str) -> None:
    """Fail early (exit 2) on a source that is neither a seeded DIR nor AE@HOST:PORT."""
    if is_directory_source(spec):
        root = Path(spec)
        if not root.is_dir():
            raise ConfigError(f"--source: {spec!r} is not a directory (nor AE@HOST:PORT)",
                              field="source")
        if not (root / "index.sqlite").exists() and not (root / "objects").is_dir():
            raise ConfigError(f"--source: {spec!r} holds no archive (no index, no objects/)",
                              field="source")
    else:
        parse_ae_address(spec, "--source")


def check_target_spec(spec: str) -> None:
    if spec not in ("builtin", "orthanc"):
        parse_ae_address(spec, "--target")


@dataclass
class Endpoints:
    """The running ends of one migration run; ``source_dir`` is set for a DIR source."""

    source: AeAddress
    target: AeAddress
    target_kind: str
    source_dir: Path | None = None
    source_archive: Archive | None = None
    target_archive: Archive | None = None


def open_endpoints(stack: ExitStack, source_spec: str, target_spec: str, *, report_dir: Path,
                   events: EventBus | None = None) -> Endpoints:
    """Start what must run for this migration (in order) and register its shutdown.

    A DIR source gets a port picked first, so an Orthanc target can list the legacy
    before it starts; the legacy archive then starts knowing the target's address.
    """
    check_source_spec(source_spec)
    check_target_spec(target_spec)
    events = events or EventBus()
    source_dir = Path(source_spec) if is_directory_source(source_spec) else None
    legacy_port = free_port() if source_dir is not None else 0
    source = (AeAddress(ae_title=LEGACY_AE, host="127.0.0.1", port=legacy_port)
              if source_dir is not None else parse_ae_address(source_spec, "--source"))
    target_archive = None
    if target_spec == "builtin":
        storage = report_dir / "target-archive"
        storage.mkdir(parents=True, exist_ok=True)
        target_archive = Archive(ArchiveConfig(name="migration-target", ae_title=BUILTIN_TARGET_AE,
                                               storage_dir=storage), events)
        stack.enter_context(target_archive)
        target = AeAddress(ae_title=BUILTIN_TARGET_AE, host="127.0.0.1",
                           port=target_archive.port)
    elif target_spec == "orthanc":
        target = stack.enter_context(_orthanc_target(source, report_dir))
    else:
        target = parse_ae_address(target_spec, "--target")
    source_archive = None
    if source_dir is not None:
        source_archive = Archive(ArchiveConfig(
            name="legacy", ae_title=LEGACY_AE, port=legacy_port, storage_dir=source_dir,
            lenient_uids=True,  # a legacy archive holds what it was sent (dirt profiles)
            destinations={target.ae_title: (target.host, target.port)}), events)
        stack.enter_context(source_archive)
        source = AeAddress(ae_title=LEGACY_AE, host="127.0.0.1", port=source_archive.port)
    kind = target_spec if target_spec in ("builtin", "orthanc") else "external"
    return Endpoints(source, target, kind, source_dir, source_archive, target_archive)


class _orthanc_target:  # noqa: N801 - used like a function in ``enter_context``
    """A fresh Orthanc for the run, listing the legacy (stores) and the migrator (Q/R)."""

    def __init__(self, legacy: AeAddress, report_dir: Path) -> None:

        self._process = OrthancProcess(OrthancSettings(
            ae_title=ORTHANC_TARGET_AE,
            modalities={legacy.ae_title: (legacy.host, legacy.port),
                        MIGRATOR_AE: ("127.0.0.1", 104)},
            workdir=report_dir / "orthanc",
            extra={"DicomAlwaysAllowFind": True, "DicomAlwaysAllowGet": True,
                   "DicomAlwaysAllowMove": True, "DicomAlwaysAllowStore": True}))

    def __enter__(self) -> AeAddress:
        self._process.start()
        return AeAddress(ae_title=ORTHANC_TARGET_AE, host="127.0.0.1",
                         port=self._process.dicom_port)

    def __exit__(self, *exc: object) -> None:
        self._process.stop()


__all__ = ["Endpoints", "open_endpoints", "check_source_spec",
           "check_target_spec", "is_directory_source", "LEGACY_AE", "BUILTIN_TARGET_AE",
           "MIGRATOR_AE"]
