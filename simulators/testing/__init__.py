"""pacsim for other people's test suites: testcontainers classes and a pytest plugin.

``from simulators.testing import RisContainer, ModalityContainer, OrthancContainer``;
the pytest plugin (:mod:`simulators.testing.plugin`) is loaded through the ``pytest11``
entry point when pacsim is installed. The classes need ``pip install 'pacsim[docker]'``.
"""

from __future__ import annotations

from typing import Any

_CONTAINERS = ("PacsimContainer", "LegacyPacsContainer", "RisContainer", "EhrContainer",
               "ModalityContainer", "OrthancContainer")


def __getattr__(name: str) -> Any:
    # Lazy: importing the plugin must not need testcontainers unless a container is used.
    if name in _CONTAINERS:
        from simulators.testing import containers  # needs the optional testcontainers

        return getattr(containers, name)
    raise AttributeError(name)


__all__ = list(_CONTAINERS)
