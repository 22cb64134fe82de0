"""The viewer's proxy: searches and image loads run in the viewer's container.

Kept apart from :mod:`simulators.runtime.remote` because it is the one proxy that
rewrites its arguments: addresses as this machine sees them become addresses as the
container network sees them.
"""

from __future__ import annotations

from typing import Any

from simulators.actors.viewer import ViewerConfig, ViewerSource
from simulators.dicomweb.client import LoadTiming
from simulators.events import EventBus
from simulators.runtime.remote import ControlClient, RemoteArchive


class RemoteViewer(RemoteArchive):
    """A viewer in a container: searches and loads run there, timings come back.

    Steps name where to read with a :class:`ViewerSource` as this machine sees it
    (``target`` on a published 127.0.0.1 port). The container reaches the same
    system by its name on the private network, so ``network_sources`` (source name
    -> in-network source, from the topology) replaces a known source by name before
    the call; an unknown one (an external target) is passed as given.
    """

    kind = "viewer"
    config_class = ViewerConfig

    def __init__(self, name: str, client: ControlClient, *, address: tuple[str, int],
                 network_sources: dict[str, ViewerSource] | None = None,
                 events: EventBus | None = None) -> None:
        super().__init__(name, client, address=address, events=events)
        self.network_sources = dict(network_sources or {})

    def network_source(self, source: ViewerSource | None) -> ViewerSource | None:
        """``source`` as the viewer's container reaches it."""
        if source is None:
            return None
        return self.network_sources.get(source.name, source)

    def search_studies(self, source: ViewerSource | None = None, *, via: str = "qido",
                       **match: Any) -> list[dict[str, Any]]:
        return self._call("search_studies", source=self.network_source(source), via=via,
                          match={k: _match_text(v) for k, v in match.items()})

    def load_study(self, study_uid: str, via: str = "wado",
                   source: ViewerSource | None = None) -> LoadTiming:
        return self._call("load_study", study_uid=study_uid, via=via,
                          source=self.network_source(source))


def _match_text(value: Any) -> str | list[str] | None:
    """A matching value as the control API carries it (the viewer reads text)."""
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        return [str(item) for item in value]
    return str(value)


__all__ = ["RemoteViewer"]
