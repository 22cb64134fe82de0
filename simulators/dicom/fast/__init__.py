"""A fast DICOM association requestor on asyncio, reusing pynetdicom's codecs.

``FastAssociation`` (async) serves the load engine, where hundreds of simulated
modalities share one event loop; ``FastClient`` is its synchronous wrapper for
actors. ``read_part10`` loads a file's dataset bytes so C-STORE sends them as they
are, without decoding and re-encoding.
"""

from simulators.dicom.fast.association import STORAGE_COMMITMENT, FastAssociation
from simulators.dicom.fast.client import FastClient
from simulators.dicom.fast.dimse import FIND_MODELS, EventReport, NResult
from simulators.dicom.fast.files import EncodedInstance, encode_dataset, read_part10
from simulators.dicom.fast.negotiation import AcceptedContext

__all__ = [
    "FastAssociation", "FastClient", "EncodedInstance", "read_part10", "encode_dataset",
    "AcceptedContext", "NResult", "EventReport", "FIND_MODELS", "STORAGE_COMMITMENT",
]
