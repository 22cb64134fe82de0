"""The viewer's proxy: searches and image loads run in the viewer's container.

Kept apart from :mod:`simulators.runtime.remote` because it is the one proxy that
rewrites its arguments: addresses as this machine sees them become addresses as the
container network sees them. Its methods (``search_studies``, ``load_study`` and the
archive's) are generated from the viewer's declaration like every proxy's; only the
rewriting is written here.
"""

from __future__ import annotations

from typing import Any

from simulators.actors.operations import ViewerOperations
from simulators.actors.viewer import ViewerConfig, ViewerSource
from simulators.events import EventBus
from simulators.runtime.remote import ControlClient, RemoteArchive


class RemoteViewer(RemoteArchive, ViewerOperations):
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

    def _outgoing(self, value: Any) -> Any:
        if isinstance(value, ViewerSource):
            return self.network_source(value)
        return super()._outgoing(value)


__all__ = ["RemoteViewer"]
