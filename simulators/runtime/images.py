"""Build the pacsim and Orthanc images (``pacsim images build``).

Uses the docker SDK, not the docker CLI: the SDK talks to the engine's API directly,
so the build does not depend on which CLI or buildx plugin a machine has (Debian's
docker.io 20.10 CLI and a newer static CLI behave differently), it returns image ids
and sizes as data, and it is the same dependency the Docker runtime already needs.
The local debootstrap base is made by ``compose/build-base.sh`` (a shell script,
because debootstrap and ``docker import`` are shell tools and CI runs it directly).

Offline by design: the Python side comes from ``compose/wheelhouse`` (``pip wheel``
on the host, trying the wheelhouse alone first so a second build needs no index),
and the images install it with ``pip install --no-index``.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from simulators.errors import ConfigError
from simulators.peers.orthanc import OrthancProcess, OrthancSettings
from simulators.runtime.engine import docker_client, orthanc_image, pacsim_image

log = logging.getLogger(__name__)

#: Local debootstrap bases made by compose/build-base.sh.
LOCAL_PACSIM_BASE = "pacsim/base:bookworm"
LOCAL_ORTHANC_BASE = "pacsim/orthanc-base:bookworm"
#: Ports inside the Orthanc image (Orthanc's usual ones).
ORTHANC_DICOM_PORT = 4242
ORTHANC_HTTP_PORT = 8042
ORTHANC_PLUGIN = "/usr/share/orthanc/plugins/libOrthancDicomWeb.so"
BUILD_LABEL = "org.pacsim.image"

Progress = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class BuiltImage:
    """One image as built: its tag, id, size in bytes and build time."""

    tag: str
    image_id: str
    size: int
    seconds: float

    def describe(self) -> str:
        return f"{self.tag} {self.image_id[7:19]} {self.size / 1e6:.0f} MB in {self.seconds:.1f}s"


def source_root() -> Path:
    """The pacsim checkout holding ``compose/Dockerfile`` (images build from source)."""
    root = Path(__file__).resolve().parents[2]
    if not (root / "compose" / "Dockerfile").is_file() or not (root / "pyproject.toml").is_file():
        raise ConfigError("pacsim images build needs a pacsim source checkout "
                          "(compose/Dockerfile not found)", looked_in=str(root))
    return root


def make_wheelhouse(root: Path, wheelhouse: Path, progress: Progress = print) -> None:
    """``pip wheel`` pacsim and its dependencies (plus the build backend) into ``wheelhouse``.

    The first try uses only the wheelhouse (no index): after one online build, later
    builds and air-gapped sites need no network. If that fails, pip asks the index.
    """
    wheelhouse.mkdir(parents=True, exist_ok=True)
    base = [sys.executable, "-m", "pip", "wheel", "--quiet", "--disable-pip-version-check",
            "--wheel-dir", str(wheelhouse), "--find-links", str(wheelhouse)]
    targets = [str(root), "setuptools>=68", "wheel"]
    started = time.monotonic()
    offline = subprocess.run([*base, "--no-index", *targets], capture_output=True, text=True)
    if offline.returncode != 0:
        progress("wheelhouse: fetching wheels from the package index")
        online = subprocess.run([*base, *targets], capture_output=True, text=True)
        if online.returncode != 0:
            raise ConfigError("pip wheel failed: " + (online.stderr.strip().splitlines()
                                                      or ["no output"])[-1]
                              + f"\nhint: with no network, make the wheelhouse once where "
                                f"there is one (pacsim images build, or pip wheel) and copy "
                                f"{wheelhouse} here; later builds need no index")
    count = len(list(wheelhouse.glob("*.whl")))
    progress(f"wheelhouse: {count} wheels in {wheelhouse} ({time.monotonic() - started:.1f}s)")


def orthanc_image_config() -> dict[str, Any]:
    """``/etc/orthanc/orthanc.json`` for the image, from the same generator as the
    Orthanc process peer, with container paths and ports. No ``DicomModalities``:
    compose files and tests add a second JSON file with theirs (Orthanc reads the
    whole directory, and a key may appear in one file only)."""
    settings = OrthancSettings(dicom_port=ORTHANC_DICOM_PORT, http_port=ORTHANC_HTTP_PORT,
                               workdir=Path("/var/lib/orthanc"), extra={
                                   # Published on 127.0.0.1 only; inside, the network is private.
                                   "RemoteAccessAllowed": True,
                                   "Plugins": [ORTHANC_PLUGIN],
                                   "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
                                   # Peers that are not registered may still query (tests do).
                                   "DicomAlwaysAllowFind": True,
                                   "DicomAlwaysAllowMove": True,
                               })
    config = OrthancProcess(settings).configuration(Path("/var/lib/orthanc"))
    config.pop("DicomModalities", None)
    return config


def orthanc_modalities_config(modalities: dict[str, tuple[str, int]]) -> dict[str, Any]:
    """The second Orthanc JSON: AE title -> [AE, host, port] of its C-MOVE destinations."""
    return {"DicomModalities": {ae: [ae, host, port] for ae, (host, port) in modalities.items()}}


#: What docker says when a base image is neither local nor reachable: no network.
_OFFLINE_SIGNS = ("pull access denied", "not found", "manifest unknown", "failed to resolve",
                  "dial tcp", "name resolution", "i/o timeout", "no such host",
                  "connection refused", "network is unreachable", "tls handshake timeout")
OFFLINE_HINT = ("hint: no network to fetch the base image? build on local debootstrap "
                "bases instead: pacsim images build --local-base")


def _build(client: Any, context: Path, tag: str, base: str | None, progress: Progress,
           dockerfile: str = "Dockerfile", hint: bool = True) -> BuiltImage:
    started = time.monotonic()
    buildargs = {"BASE": base} if base else {}
    progress(f"building {tag}" + (f" on {base}" if base else ""))
    try:
        image, logs = client.images.build(path=str(context), dockerfile=dockerfile, tag=tag,
                                          buildargs=buildargs, rm=True, forcerm=True,
                                          pull=False, labels={BUILD_LABEL: tag})
    except Exception as exc:  # noqa: BLE001 - docker.errors.BuildError / APIError
        lines = [str(item.get("stream", "")).rstrip() for item in getattr(exc, "build_log", [])]
        tail = "\n".join(line for line in lines if line)[-1500:]
        offline = hint and base not in (LOCAL_PACSIM_BASE, LOCAL_ORTHANC_BASE) and any(
            sign in f"{exc}\n{tail}".lower() for sign in _OFFLINE_SIGNS)
        raise ConfigError(f"building {tag} failed: {exc}" + (f"\n{tail}" if tail else "")
                          + (f"\n{OFFLINE_HINT}" if offline else "")) from None
    for item in logs:
        if "stream" in item and item["stream"].strip():
            log.debug("%s: %s", tag, item["stream"].rstrip())
    image.reload()
    return BuiltImage(tag, image.id, int(image.attrs.get("Size", 0)), time.monotonic() - started)


def build_local_base(root: Path, progress: Progress = print) -> None:
    """Run compose/build-base.sh (skips bases that already exist)."""
    script = root / "compose" / "build-base.sh"
    progress(f"local base: {script}")
    done = subprocess.run(["bash", str(script), "all"], capture_output=True, text=True)
    for line in done.stdout.splitlines():
        progress(line)
    if done.returncode != 0:
        raise ConfigError(f"{script.name} failed: {done.stderr.strip()[-800:]}")


def build_images(*, base: str | None = None, orthanc_base: str | None = None,
                 local_base: bool = False, progress: Progress = print,
                 which: tuple[str, ...] = ("pacsim", "orthanc")) -> list[BuiltImage]:
    """Build the pacsim image (and the Orthanc one); returns what was built.

    ``local_base`` makes the debootstrap bases first when missing and builds on them,
    with no network at all. ``base``/``orthanc_base`` name other base images.
    """
    root = source_root()
    context = root / "compose"
    # The engine first: with none, a debootstrap would run for minutes (and fill the
    # temp folder) only to fail at `docker import`.
    client = docker_client()
    built: list[BuiltImage] = []
    try:
        if local_base:
            build_local_base(root, progress)
            base = base or LOCAL_PACSIM_BASE
            orthanc_base = orthanc_base or LOCAL_ORTHANC_BASE
        if "pacsim" in which:
            make_wheelhouse(root, context / "wheelhouse", progress)
            built.append(_build(client, context, pacsim_image(), base, progress,
                                hint=not local_base))
            progress(f"built {built[-1].describe()}")
        if "orthanc" in which:
            config = context / "orthanc" / "orthanc.json"
            config.write_text(json.dumps(orthanc_image_config(), indent=2) + "\n")
            built.append(_build(client, context / "orthanc", orthanc_image(), orthanc_base,
                                progress, hint=not local_base))
            progress(f"built {built[-1].describe()}")
    finally:
        client.close()
    return built


__all__ = ["BuiltImage", "build_images", "build_local_base", "make_wheelhouse",
           "orthanc_image_config", "orthanc_modalities_config", "source_root",
           "LOCAL_PACSIM_BASE", "LOCAL_ORTHANC_BASE", "ORTHANC_DICOM_PORT", "ORTHANC_HTTP_PORT"]
