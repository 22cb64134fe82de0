"""A fast DICOM requestor and acceptor on asyncio, reusing pynetdicom's codecs.

``FastAssociation`` (async) serves the load engine, where hundreds of simulated
modalities share one event loop; ``FastClient`` is its synchronous wrapper for
actors. ``FastServer`` is the acceptor, and pacsim's only one (archive, RIS,
the modality's commitment listener, ``CommitmentListener``; a unit test scans for
pynetdicom acceptors): one event loop in a daemon thread for every association,
handlers registered per DIMSE command, blocking work in a thread pool. ``read_part10`` loads a file's dataset bytes so
C-STORE sends them as they are, without decoding and re-encoding.

Shared core: ``codec`` (PDU framing with bounded reads, fragmentation), ``dimse``
(request and response messages), ``negotiation``/``acceptance`` (the two sides
of association negotiation).
"""

from simulators.dicom.fast.acceptance import SupportedContext
from simulators.dicom.fast.association import STORAGE_COMMITMENT, FastAssociation
from simulators.dicom.fast.client import FastClient
from simulators.dicom.fast.dimse import FIND_MODELS, EventReport, NResult
from simulators.dicom.fast.files import EncodedInstance, encode_dataset, read_part10
from simulators.dicom.fast.negotiation import AcceptedContext
from simulators.dicom.fast.server import FastServer, ServerSettings
from simulators.dicom.fast.service import DimseRequest, Reply

__all__ = [
    "FastAssociation", "FastClient", "EncodedInstance", "read_part10", "encode_dataset",
    "AcceptedContext", "NResult", "EventReport", "FIND_MODELS", "STORAGE_COMMITMENT",
    "FastServer", "ServerSettings", "SupportedContext", "DimseRequest", "Reply",
]
