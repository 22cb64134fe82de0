"""A virtual modality: what one scanner does to the RIS and the archive, on asyncio.

Each operation opens its own association(s) as real scanners do (a worklist poll is
associate, C-FIND, release), on :class:`FastAssociation`, so hundreds of modalities
share one event loop. Each operation is reported as one ``load.<do>`` event spanning
its associations, next to the wire exchanges the clients report themselves. An
operation never raises: failures become the event's outcome and reason, so one
refused association cannot stop a modality, let alone the run.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import threading
import time
from typing import Any, Awaitable, Callable

from pydicom.dataset import Dataset

from simulators.dicom.address import AeAddress
from simulators.dicom.ae import describe_rejection
from simulators.dicom.fast import FIND_MODELS, FastAssociation, encode_dataset
from simulators.dicom.fast.requests import mpps_create, mpps_final, worklist_identifier
from simulators.errors import AssociationRejected, NoWorklistItem, PacsimError, StatusError
from simulators.events import EventBus, Exchange
from simulators.hl7 import messages
from simulators.hl7.er7 import ack_code
from simulators.hl7.mllp_client import AsyncMllpClient
from simulators.load.images import EXPLICIT_VR_LE, EncodedImage, StudyImages
from simulators.load.profile import Operation
from simulators.load.shape import Member
from simulators.load.stats import OPERATION_PREFIX
from simulators.load.target import LoadTarget
from simulators.world.context import StudyContext
from simulators.world.models import Order
from simulators.world.world import World

UNCOMPRESSED = ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2"]
VERIFICATION = "1.2.840.10008.1.1"
MPPS_CLASS = "1.2.840.10008.3.1.2.3.3"
MWL_CLASS = FIND_MODELS["worklist"]
#: Patients load orders are spread over (the world makes them on demand, seeded).
PATIENT_POOL = 5000


class OrderNumbers:
    """Order indexes shared by every modality of a run (and disjoint across workers)."""

    def __init__(self, start: int, step: int = 1) -> None:
        self._numbers = itertools.count(start, step)
        self._lock = threading.Lock()

    def next(self) -> int:
        with self._lock:
            return next(self._numbers)


class WorklistQueries:
    """Worklist identifiers built once per (station, day, matching keys), encoded once
    per transfer syntax, shared by the fleet.

    A modality sends the same identifier at every poll; building and encoding it with
    pydicom cost about 2 ms, as much as counting 250 matches. Bounded: the cache is
    emptied when it reaches ``limit`` entries.
    """

    def __init__(self, limit: int = 4096) -> None:
        self.limit = limit
        self._queries: dict[tuple[object, ...], tuple[Dataset, dict[str, bytes]]] = {}

    def identifier(self, station: str, day: dt.date, match: dict[str, Any]
                   ) -> tuple[Dataset, dict[str, bytes]]:
        """(identifier, its encodings by transfer syntax); unknown keys raise ConfigError."""
        key = (station, day, tuple(sorted((k, str(v)) for k, v in match.items())))
        found = self._queries.get(key)
        if found is None:
            if len(self._queries) >= self.limit:
                self._queries.clear()
            found = self._queries[key] = (worklist_identifier(station, day, match), {})
        return found

    @staticmethod
    def encoded(query: tuple[Dataset, dict[str, bytes]], transfer_syntax: str) -> bytes:
        identifier, encodings = query
        data = encodings.get(transfer_syntax)
        if data is None:
            data = encodings[transfer_syntax] = encode_dataset(identifier, transfer_syntax)
        return data


class VirtualModality:
    """One simulated scanner of the fleet (see the module docstring)."""

    def __init__(self, member: Member, target: LoadTarget, *, world: World, events: EventBus,
                 images: StudyImages, orders: OrderNumbers, timeout: float = 30.0,
                 queries: WorklistQueries | None = None) -> None:
        self.member = member
        self.target = target
        self.world = world
        self.events = events
        self.images = images
        self.orders = orders
        self.timeout = timeout
        self.queries = queries or WorklistQueries()
        self._attempts: dict[str, int] = {}
        self._handlers: dict[str, Callable[[Operation, Exchange], Awaitable[None]]] = {
            "mwl.query": self._mwl_query, "modality.perform": self._perform,
            "store": self._store, "mpps": self._mpps, "hl7.order": self._hl7_order,
            "echo": self._echo}

    @property
    def ae_title(self) -> str:
        return self.member.ae_title

    async def run(self, operation: Operation) -> Exchange:
        """Perform ``operation`` once; emits and returns its ``load.<do>`` event.

        Cancelled operations (the run ended) are marked ``cancelled`` and re-raised.
        """
        event = Exchange(kind=OPERATION_PREFIX + operation.do, actor=self.ae_title,
                         start=time.time())
        began = time.perf_counter()
        try:
            await self._handlers[operation.do](operation, event)
        except asyncio.CancelledError:
            event.outcome = "cancelled"
            raise
        except (PacsimError, OSError, TimeoutError) as exc:
            event.outcome = "error"
            event.detail["error"] = str(exc)
            if isinstance(exc, AssociationRejected):  # statistics group errors by it
                event.detail["rejection"] = describe_rejection(exc.result, exc.source, exc.reason)
        finally:
            event.duration = time.perf_counter() - began
            self.events.emit(event)
        return event

    # ---------------------------------------------------------------- associations
    async def _open(self, peer: AeAddress | None, contexts: list[tuple[str, list[str]]],
                    event: Exchange, role: str) -> FastAssociation:
        if peer is None:
            raise PacsimError(f"the load target has no {role} peer")
        event.peer = event.peer or peer.address
        association = FastAssociation(actor=self.ae_title, events=self.events,
                                      dimse_timeout=self.timeout)
        await association.connect(peer.host, peer.port, self.ae_title, peer.ae_title, contexts,
                                  timeout=self.timeout, tls=peer.tls)
        return association

    @staticmethod
    def _status(event: Exchange, status: int, ok: bool | None = None) -> None:
        event.status = f"0x{status:04X}"
        good = status == 0 if ok is None else ok
        if not good and event.outcome == "ok":
            event.outcome = "warning" if 0xB000 <= status <= 0xBFFF else "failed"

    # ---------------------------------------------------------------- worklist
    async def query_worklist(self, event: Exchange, scope: str = "station", keep: int = 0,
                             **match: Any) -> list[Dataset]:
        """Query the worklist; returns the first ``keep`` items, decoded.

        The others are only counted (``event.detail["matches"]``): a poll needs no
        content, and decoding 250 items per poll made the generator its own bottleneck.
        """
        station = self.ae_title if scope == "station" else ""
        query = self.queries.identifier(station, dt.date.today(), match)  # checked first
        association = await self._open(self.target.worklist, [(MWL_CLASS, UNCOMPRESSED)],
                                       event, "worklist")
        async with association:
            encoded = self.queries.encoded(query, association.transfer_syntax_for(MWL_CLASS))
            result = await association.count_matches(encoded, "worklist", keep=keep)
        event.detail["matches"] = result.matches
        if result.status != 0:
            self._status(event, result.status)
            raise StatusError("worklist query failed", status=result.status)
        return list(result.items)

    async def _mwl_query(self, operation: Operation, event: Exchange) -> None:
        await self.query_worklist(event, operation.scope, **operation.match)
        event.status = "0x0000"

    # ---------------------------------------------------------------- HL7 orders
    def new_order(self) -> Order:
        index = self.orders.next()
        patient = self.world.patient(index % PATIENT_POOL)
        return self.world.order(patient, self.member.modality, station_ae=self.ae_title,
                                station_name=self.ae_title, index=index)

    async def send_order(self, event: Exchange) -> Order:
        if self.target.hl7 is None:
            raise PacsimError("the load target takes no HL7 orders")
        order = self.new_order()
        host, port = self.target.hl7
        event.peer = event.peer or f"{host}:{port}"
        client = AsyncMllpClient(host, port, timeout=self.timeout, events=self.events,
                                 name=self.ae_title)
        async with client:
            reply = await client.send(messages.orm_o01(order))
        code = ack_code(reply)
        event.detail["accession"] = order.accession
        if code not in ("AA", "CA"):
            event.status, event.outcome = code or "no ACK", "failed"
            raise PacsimError("order refused", ack=code)
        return order

    async def _hl7_order(self, operation: Operation, event: Exchange) -> None:
        await self.send_order(event)
        event.status = "AA"

    # ---------------------------------------------------------------- exams
    async def _scheduled_item(self, event: Exchange) -> Dataset:
        """A worklist item to perform: a fresh order's when HL7 is available, else any."""
        if self.target.hl7 is not None:
            order = await self.send_order(event)
            items = await self.query_worklist(event, "station", keep=1,
                                              AccessionNumber=order.accession)
        else:
            items = await self.query_worklist(event, "station", keep=1)
        if not items:
            raise NoWorklistItem("no worklist item for this station", station=self.ae_title)
        return items[0]

    def _context(self, item: Dataset) -> StudyContext:
        study_uid = str(item.get("StudyInstanceUID", ""))
        attempt = self._attempts.get(study_uid, 0)
        self._attempts[study_uid] = attempt + 1
        return StudyContext.from_worklist(item, self.world, station_name=self.ae_title,
                                          attempt=attempt,
                                          performed_start=dt.datetime.now().replace(microsecond=0))

    async def _mpps_open(self, ctx: StudyContext, item: Dataset, event: Exchange) -> str:
        started = ctx.performed_step_start
        association = await self._open(self.target.mpps, [(MPPS_CLASS, UNCOMPRESSED)], event,
                                       "MPPS")
        async with association:
            result = await association.n_create(MPPS_CLASS, ctx.mpps_uid,
                                                mpps_create(ctx, item, self.ae_title, started))
        if result.status != 0:
            self._status(event, result.status)
            raise StatusError("MPPS N-CREATE refused", status=result.status)
        return result.instance_uid or str(ctx.mpps_uid)

    async def _mpps_close(self, ctx: StudyContext, mpps_uid: str, images: list[EncodedImage],
                          event: Exchange) -> None:
        final = mpps_final(ctx, [image.reference() for image in images], "COMPLETED",
                           self.ae_title,
                           dt.datetime.now().replace(microsecond=0), None)
        association = await self._open(self.target.mpps, [(MPPS_CLASS, UNCOMPRESSED)], event,
                                       "MPPS")
        async with association:
            result = await association.n_set(MPPS_CLASS, mpps_uid, final)
        if result.status != 0:
            self._status(event, result.status)
            raise StatusError("MPPS N-SET refused", status=result.status)

    async def store_study(self, ctx: StudyContext, operation: Operation,
                          event: Exchange) -> list[EncodedImage]:
        """C-STORE the study on one association; returns the stored images."""
        sent: list[EncodedImage] = []
        failures = 0
        sop_class = None
        association: FastAssociation | None = None
        try:
            for image in self.images.encoded(ctx, operation.images):
                sop_class = image.sop_class
                if association is None:
                    association = await self._open(
                        self.target.store, [(sop_class, [EXPLICIT_VR_LE])], event, "store")
                status = await association.store(image.parts, sop_class, image.sop_instance,
                                                 EXPLICIT_VR_LE)
                if status != 0 and not 0xB000 <= status <= 0xBFFF:
                    failures += 1
                    self._status(event, status)
                sent.append(image)
                await asyncio.sleep(0)  # let the other modalities run between images
            if association is not None:
                await association.release()
        except BaseException:
            if association is not None:
                await association.abort()
            raise
        event.detail["images"] = len(sent)
        if failures:
            raise PacsimError(f"{failures} of {len(sent)} images refused", sop_class=sop_class)
        return sent

    async def _perform(self, operation: Operation, event: Exchange) -> None:
        item = await self._scheduled_item(event)
        ctx = self._context(item)
        mpps_uid = await self._mpps_open(ctx, item, event) if self.target.mpps else None
        images = await self.store_study(ctx, operation, event)
        if mpps_uid is not None:
            await self._mpps_close(ctx, mpps_uid, images, event)
        event.status = event.status or "0x0000"

    async def _mpps(self, operation: Operation, event: Exchange) -> None:
        item = await self._scheduled_item(event)
        ctx = self._context(item)
        mpps_uid = await self._mpps_open(ctx, item, event)
        await self._mpps_close(ctx, mpps_uid, [], event)
        event.status = "0x0000"

    async def _store(self, operation: Operation, event: Exchange) -> None:
        index = self.orders.next()
        ctx = StudyContext.unscheduled(self.world.patient(index % PATIENT_POOL), self.world,
                                       self.member.modality, station_name=self.ae_title,
                                       index=index)
        await self.store_study(ctx, operation, event)
        event.status = event.status or "0x0000"

    async def _echo(self, operation: Operation, event: Exchange) -> None:
        peer = self.target.store or self.target.worklist
        association = await self._open(peer, [(VERIFICATION, UNCOMPRESSED)], event, "echo")
        async with association:
            self._status(event, await association.echo())


__all__ = ["VirtualModality", "OrderNumbers", "WorklistQueries", "PATIENT_POOL"]
