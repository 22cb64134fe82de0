"""pacsim: simulated modalities, RIS/EHR and legacy PACS speaking real DICOM and HL7.

The public API is deliberately small; everything else is internal and may move.
"""

from simulators.errors import (
    AssociationError, ConfigError, MllpError, PacsimError, ProtocolError, ScenarioError,
    StoreError, WorldError,
)
from simulators.events import EventBus, Exchange, bus

__version__ = "0.1.0"

__all__ = [
    "__version__", "PacsimError", "ConfigError", "ScenarioError", "WorldError",
    "ProtocolError", "AssociationError", "MllpError", "StoreError",
    "EventBus", "Exchange", "bus",
]
