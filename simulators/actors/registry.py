"""Which actor kinds exist, and how ``pacsim serve KIND`` builds one from settings.

Imports are lazy so ``pacsim --help`` stays fast and a broken optional actor cannot
break the others. Each kind names the fields its generic ``--host/--port/--ae-title``
flags map to (the RIS has two ports, for example: DICOM is its primary one).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from simulators.actors.base import Actor
from simulators.config import build_config
from simulators.errors import ConfigError


@dataclass(frozen=True, slots=True)
class ActorKind:
    """Where one actor kind lives and what its generic flags mean."""

    kind: str
    module: str
    config_class: str
    actor_class: str
    port_field: str
    summary: str

    def load(self) -> tuple[type, type[Actor]]:
        module = importlib.import_module(self.module)
        return getattr(module, self.config_class), getattr(module, self.actor_class)


KINDS: dict[str, ActorKind] = {
    k.kind: k for k in (
        ActorKind("ehr", "simulators.actors.ehr", "EhrConfig", "Ehr", "port",
                  "ADT and Order Placer: sends ADT/ORM/OMG over MLLP, receives ORU results"),
        ActorKind("ris", "simulators.actors.ris", "RisConfig", "Ris", "dicom_port",
                  "Order Filler: HL7 orders in, Modality Worklist and MPPS SCP out"),
        ActorKind("modality", "simulators.actors.modality", "ModalityConfig", "Modality", "port",
                  "Acquisition modality: worklist, MPPS, C-STORE, storage commitment"),
        ActorKind("archive", "simulators.actors.archive", "ArchiveConfig", "Archive", "port",
                  "Legacy PACS / reference target: store, query, move, get, commitment"),
        ActorKind("viewer", "simulators.actors.viewer", "ViewerConfig", "Viewer", "port",
                  "Viewer / workstation: QIDO/WADO-RS or C-FIND + C-MOVE/C-GET, load timings"),
    )
}


def actor_kind(kind: str) -> ActorKind:
    try:
        return KINDS[kind]
    except KeyError:
        raise ConfigError(f"unknown actor kind {kind!r}; choose one of: {', '.join(KINDS)}") from None


def build_actor(kind: str, *, config_file: Path | None = None, host: str | None = None,
                port: int | None = None, ae_title: str | None = None,
                extra: dict[str, Any] | None = None) -> Actor:
    """Build an actor of ``kind`` from file, ``PACSIM_*`` environment and flags."""
    spec = actor_kind(kind)
    config_cls, actor_cls = spec.load()
    names = {f.name for f in fields(config_cls)}
    overrides: dict[str, Any] = dict(extra or {})
    if host is not None:
        overrides["host"] = host
    if port is not None:
        overrides[spec.port_field] = port
    if ae_title is not None:
        if "ae_title" not in names:
            raise ConfigError(f"the {kind} actor has no DICOM AE title (it speaks HL7 only)")
        overrides["ae_title"] = ae_title
    config = build_config(config_cls, file=config_file, overrides=overrides)
    return actor_cls(config)


__all__ = ["ActorKind", "KINDS", "actor_kind", "build_actor"]
