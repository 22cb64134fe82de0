"""Valid exchanges for the socket fuzzer to damage: what real clients send.

The bytes come from pacsim's own client encoders (the A-ASSOCIATE-RQ the fast client
sends, pynetdicom's DIMSE fragmentation, the MLLP framing the HL7 client uses), so
they are exactly the exchanges recorded on the wire between pacsim's modalities/EHR
and the listeners - and every call makes new UIDs and control IDs, so an instance
the archive acknowledges during fuzzing can be told apart from every other one.
"""

from __future__ import annotations

import datetime as dt
import io
import itertools
import random
from dataclasses import dataclass

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.sequence import Sequence
from pydicom.uid import generate_uid

from simulators.dicom.fast import codec, dimse
from simulators.dicom.fast.files import encode_dataset
from simulators.dicom.fast.negotiation import associate_rq_bytes, build_contexts
from simulators.hl7 import messages
from simulators.hl7.framing import encode_frame
from simulators.world.images import build_study
from simulators.world.models import Order, Patient, Procedure, ScheduledStep
from simulators.world.export import generated_context

VERIFICATION = "1.2.840.10008.1.1"
CT_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
MWL_FIND = "1.2.840.10008.5.1.4.31"
MPPS = "1.2.840.10008.3.1.2.3.3"
IMPLICIT, EXPLICIT = "1.2.840.10008.1.2", "1.2.840.10008.1.2.1"
MAX_PDU = 16384
#: Context IDs as build_contexts numbers them: one transfer syntax each, so the
#: acceptor's choice (and so the bytes that follow) is known in advance.
ECHO_CX, STORE_CX, MWL_CX = 1, 3, 5
_counter = itertools.count(1)


@dataclass(frozen=True)
class Exchange:
    """One valid conversation, as the PDUs or frames a client sends in order."""

    kind: str           # "dicom", "hl7" or "http"
    name: str           # what it is: "c-store", "orm", ...
    chunks: tuple[bytes, ...]

    @property
    def data(self) -> bytes:
        return b"".join(self.chunks)


def _association(called_ae: str) -> bytes:
    contexts = build_contexts([(VERIFICATION, [IMPLICIT]), (CT_STORAGE, [EXPLICIT]),
                               (MWL_FIND, [IMPLICIT])])
    return associate_rq_bytes("FUZZER", called_ae, contexts, MAX_PDU)


def _pdus(parts: list) -> list[bytes]:
    """codec yields header, fragment pairs: one bytes object per PDU."""
    return [bytes(parts[i]) + bytes(parts[i + 1]) for i in range(0, len(parts), 2)]


_TEMPLATE: Dataset | None = None


def ct_instance() -> Dataset:
    """A small generated CT image with fresh instance, series and study UIDs."""
    global _TEMPLATE
    if _TEMPLATE is None:
        _TEMPLATE = build_study(generated_context("CT", 7), per_series=1, rows=16, cols=16)[0]
    ds = Dataset()
    ds.update(_TEMPLATE)
    ds.file_meta = FileMetaDataset(_TEMPLATE.file_meta)
    ds.file_meta.TransferSyntaxUID = EXPLICIT
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.SeriesInstanceUID = generate_uid()
    ds.StudyInstanceUID = generate_uid()
    return ds


def echo(called_ae: str) -> Exchange:
    return Exchange("dicom", "c-echo", (
        _association(called_ae),
        *codec.message_pdus(dimse.c_echo_rq(next(_counter) % 0xFFFF + 1), ECHO_CX, MAX_PDU),
        codec.release_rq_bytes()))


def store(called_ae: str) -> Exchange:
    ds = ct_instance()
    command = dimse.c_store_rq_command(next(_counter) % 0xFFFF + 1, CT_STORAGE,
                                       str(ds.SOPInstanceUID))
    return Exchange("dicom", "c-store", (
        _association(called_ae),
        *_pdus(codec.encoded_command_pdus(command, STORE_CX, MAX_PDU)),
        *_pdus(list(codec.dataset_pdus(encode_dataset(ds, EXPLICIT), STORE_CX, MAX_PDU))),
        codec.release_rq_bytes()))


def mwl_find(called_ae: str) -> Exchange:
    identifier = Dataset()
    identifier.PatientName = "*"
    identifier.AccessionNumber = ""
    step = Dataset()
    step.ScheduledStationAETitle = ""
    step.ScheduledProcedureStepStartDate = ""
    step.Modality = ""
    identifier.ScheduledProcedureStepSequence = Sequence([step])
    command = dimse.c_find_rq_command(next(_counter) % 0xFFFF + 1, MWL_FIND)
    return Exchange("dicom", "c-find", (
        _association(called_ae),
        *_pdus(codec.encoded_command_pdus(command, MWL_CX, MAX_PDU)),
        *_pdus(list(codec.dataset_pdus(encode_dataset(identifier, IMPLICIT), MWL_CX, MAX_PDU))),
        codec.release_rq_bytes()))


def stow(rng: random.Random) -> Exchange:
    """STOW-RS of one instance to the archive's DICOMweb port, as an HTTP/1.1 request.

    Chunks: request line and headers, then the multipart body, so a mutation can hit
    either the HTTP framing (Content-Length, the boundary) or the DICOM part.
    """
    ds = ct_instance()
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    boundary = f"fuzz{next(_counter)}x{rng.randrange(1 << 30)}"
    body = (f"--{boundary}\r\nContent-Type: application/dicom\r\n\r\n".encode()
            + buffer.getvalue() + f"\r\n--{boundary}--\r\n".encode())
    head = (f"POST /dicom-web/studies HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: multipart/related; type=\"application/dicom\"; boundary={boundary}\r\n"
            f"Accept: application/dicom+json\r\nContent-Length: {len(body)}\r\n"
            f"Connection: close\r\n\r\n").encode()
    return Exchange("http", "stow", (head, body))


def order(rng: random.Random) -> Order:
    n = next(_counter)
    patient = Patient(f"FZ{n}", "PACSIM", rng.choice(["DOE", "MÜLLER", "Dvořák"]), "JANE",
                      dt.date(1970, 1, 1) + dt.timedelta(days=n % 9000), "F", "ISO_IR 192")
    procedure = Procedure("29252-4", "CT CHEST", "LN", "CT", "CHEST")
    step = ScheduledStep(f"FZSPS{n}", "CT01", "CT_ROOM", "CT", dt.datetime(2026, 1, 15, 9, 0), "CT")
    return Order(f"FZPL{n}", f"FZFI{n}", f"FZACC{n}", patient, procedure, f"FZRP{n}",
                 generate_uid(), step)


def hl7_to_ris(rng: random.Random) -> Exchange:
    """ORM^O01 NW, and sometimes ADT^A01 first, as the EHR sends them to the RIS."""
    placed = order(rng)
    frames = [encode_frame(messages.orm_o01(placed))]
    if rng.random() < 0.5:
        frames.insert(0, encode_frame(messages.adt("A01", placed.patient)))
    return Exchange("hl7", "orm" if len(frames) == 1 else "adt+orm", tuple(frames))


def hl7_to_ehr(rng: random.Random) -> Exchange:
    """ORU^R01, as the RIS/reporting sends a report to the EHR."""
    return Exchange("hl7", "oru", (encode_frame(messages.oru_r01(order(rng), "NO ACUTE FINDING")),))


__all__ = ["Exchange", "echo", "store", "mwl_find", "stow", "hl7_to_ris", "hl7_to_ehr", "ct_instance",
           "VERIFICATION", "CT_STORAGE", "MWL_FIND", "EXPLICIT", "IMPLICIT"]
