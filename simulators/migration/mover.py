"""Moving one study from the legacy to the target: C-MOVE, or C-GET + C-STORE relay.

* ``move`` (default): one C-MOVE per study; the legacy opens its own association to
  the target's AE title and sends its stored bytes. Nothing passes through pacsim,
  so it is the fastest path and the one real legacy PACS offer.
* ``get``: C-GET the study from the legacy (bytes as received), apply the rules'
  tag morphing, C-STORE each object to the target. Slower (every byte crosses
  pacsim twice), but it is how a migration that rewrites headers works, and the
  path for a legacy that cannot reach the target's network.

Each worker thread owns its Q/R sessions (:func:`Mover.sessions`: one
:class:`~simulators.dicom.qrscu.QrClient` per end, associations kept open), so
``--workers N`` means N parallel associations to the legacy.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from io import BytesIO
from typing import Callable

from simulators.dicom.address import AeAddress
from simulators.dicom.fast import EncodedInstance, FastClient
from simulators.dicom.fast.files import decode_dataset, encode_dataset
from simulators.errors import ProtocolError
from simulators.events import EventBus
from simulators.dicom.qrscu import QrClient
from simulators.migration.endpoints import MIGRATOR_AE
from simulators.migration.inventory import StudyInventory
from simulators.migration.morph import Morph, apply_all

VIA = ("move", "get")
#: PS3.4 B.2.3 "Refused: SOP Class not supported", what a refused context amounts to.
STATUS_SOP_CLASS_NOT_SUPPORTED = 0x0122


@dataclass
class TransferOutcome:
    """What one study's transfer did.

    ``rejected`` lists (SOP UID, status) the *target itself* answered to a C-STORE
    (only the relay sees them); ``failure`` says why the transfer as such failed (the
    legacy did not deliver every instance it lists, or a C-MOVE reported failed
    sub-operations, whose cause pacsim cannot see), empty when it did not. The
    validator never excuses a failure.
    """

    ok: bool
    completed: int = 0
    failed: int = 0
    detail: str = ""
    rejected: list[tuple[str, int]] = field(default_factory=list)
    failure: str = ""
    #: C-MOVE only: the failed sub-operations and the UIDs the legacy listed for them
    #: (the validator may prove they are exactly the instances the target refuses).
    failed_uids: list[str] = field(default_factory=list)
    failed_subops: int = 0


@dataclass
class Sessions:
    """One worker's open sessions to the legacy and to the target."""

    source: QrClient
    target: QrClient

    def close(self) -> None:
        self.source.close()
        self.target.close()


class Mover:
    """Transfers studies; thread-safe as long as each thread uses its own sessions."""

    def __init__(self, source: AeAddress, target: AeAddress, *, via: str = "move",
                 morphs: tuple[Morph, ...] = (), events: EventBus | None = None,
                 calling_ae: str = MIGRATOR_AE, timeout: float = 120.0,
                 excluded: Callable[[str], bool] | None = None) -> None:
        self.source, self.target, self.via, self.morphs = source, target, via, morphs
        #: SOP class -> True when the ingestion rules say the target does not store it:
        #: such instances are not sent at all (the report lists them as excluded).
        self.excluded = excluded or (lambda sop_class: False)
        self.events = events or EventBus()
        self.calling_ae, self.timeout = calling_ae, timeout
        self._local = threading.local()
        self._all: list[Sessions] = []
        self._lock = threading.Lock()
        self.move_requests = 0  # C-MOVE requests this mover sent (tests count them)

    def sessions(self) -> Sessions:
        """This thread's sessions (opened lazily, closed by :meth:`close`)."""
        found = getattr(self._local, "sessions", None)
        if found is None:
            found = Sessions(QrClient(self.source, self.calling_ae, self.events, "migrate-source",
                                      self.timeout, keep_open=True),
                             QrClient(self.target, self.calling_ae, self.events, "migrate-target",
                                      self.timeout, keep_open=True))
            self._local.sessions = found
            with self._lock:
                self._all.append(found)
        return found

    def close(self) -> None:
        with self._lock:
            every, self._all = self._all, []
        for sessions in every:
            try:
                sessions.close()
            except Exception:  # noqa: BLE001 - closing must not hide the run's outcome
                pass

    def transfer(self, inventory: StudyInventory, only: set[str] | None = None) -> TransferOutcome:
        """Transfer the study ``inventory`` describes (as the legacy answered C-FIND);
        ``only`` limits it to those SOP Instance UIDs (completing an interrupted move).
        Instances of excluded SOP classes are never sent: when a study has some, only
        the others are retrieved, at IMAGE level."""
        wanted = {uid for uid, (_series, sop_class) in inventory.instances.items()
                  if not self.excluded(sop_class)}
        if only is None and wanted != set(inventory.instances):
            only = wanted
        if only is not None:
            only = only & wanted
            if not only:
                return TransferOutcome(True, detail="nothing to send: every instance left is "
                                                    "of a SOP class the ingestion rules exclude")
            return self._complete(inventory, only)
        if self.via == "move":
            return self._move("STUDY", {"StudyInstanceUID": inventory.study_uid})
        return self._relay(inventory, "STUDY", {"StudyInstanceUID": inventory.study_uid})

    def _complete(self, inventory: StudyInventory, only: set[str]) -> TransferOutcome:
        """Image-level retrieves, one per series, of just the instances still missing."""
        outcomes = []
        for series_uid in sorted({inventory.instances[uid][0] for uid in only}):
            wanted = sorted(uid for uid in only if inventory.instances[uid][0] == series_uid)
            match = {"StudyInstanceUID": inventory.study_uid, "SeriesInstanceUID": series_uid,
                     "SOPInstanceUID": "\\".join(wanted)}
            outcomes.append(self._move("IMAGE", match) if self.via == "move"
                            else self._relay(inventory, "IMAGE", match))
        return TransferOutcome(all(o.ok for o in outcomes), sum(o.completed for o in outcomes),
                               sum(o.failed for o in outcomes),
                               f"{len(only)} instance(s) by IMAGE-level retrieve: "
                               + "; ".join(o.detail for o in outcomes),
                               [r for o in outcomes for r in o.rejected],
                               "; ".join(o.failure for o in outcomes if o.failure),
                               [u for o in outcomes for u in o.failed_uids],
                               sum(o.failed_subops for o in outcomes))

    def _move(self, level: str, match: dict[str, str]) -> TransferOutcome:
        with self._lock:
            self.move_requests += 1
        result = self.sessions().source.move(match, self.target.ae_title, level=level,
                                             study_uid=match.get("StudyInstanceUID", ""))
        detail = (f"C-MOVE 0x{result.status:04X}: {result.completed} completed, "
                  f"{result.failed} failed")
        # Through C-MOVE the target's own C-STORE status is invisible: a failed
        # sub-operation is a failed transfer, never "refused as the rules predict".
        failure = "" if result.ok else (
            f"{detail}{' ' + str(result.failed_uids[:3]) if result.failed_uids else ''}; "
            "the target's own status is not visible through C-MOVE (--via get shows it)")
        return TransferOutcome(result.ok, result.completed, result.failed, detail, [], failure,
                               list(result.failed_uids), result.failed)

    def _relay(self, inventory: StudyInventory, level: str, match: dict[str, str]
               ) -> TransferOutcome:
        source = self.sessions().source
        result = source.get(match, inventory.sop_classes, level=level, keep=True)
        received = result.instances
        if result.status not in (0x0000, 0xB000):
            detail = f"C-GET from the legacy failed: 0x{result.status:04X}"
            return TransferOutcome(False, 0, result.failed, detail, [], detail)
        expected = self._expected(inventory, match)
        undelivered = sorted(expected - {item.sop_instance for item in received})
        failure = ""
        if result.failed or undelivered:
            failure = (f"the legacy delivered {len(received)} of {len(expected)} instance(s) "
                       f"by C-GET (0x{result.status:04X}, {result.failed} failed "
                       f"sub-operation(s)){' e.g. ' + str(undelivered[:3]) if undelivered else ''}")
        objects = [self._morphed(item) for item in received] if self.morphs else received
        statuses = self._store(objects)
        rejected = [(item.sop_instance, status) for item, status in zip(objects, statuses)
                    if status not in (0x0000,) and not 0xB000 <= status <= 0xBFFF]
        completed = len(objects) - len(rejected)
        detail = f"C-GET {len(received)} received, C-STORE {completed} stored"
        if rejected:
            detail += f", {len(rejected)} rejected"
        return TransferOutcome(not rejected and not failure, completed,
                               len(rejected) + result.failed, detail, rejected, failure)

    @staticmethod
    def _expected(inventory: StudyInventory, match: dict[str, str]) -> set[str]:
        """The SOP Instance UIDs the legacy lists for what ``match`` asks."""
        if "SOPInstanceUID" in match:
            return set(match["SOPInstanceUID"].split("\\"))
        return set(inventory.instances)

    def _morphed(self, item: EncodedInstance) -> EncodedInstance:
        ds = decode_dataset(BytesIO(item.data), item.transfer_syntax)
        apply_all(ds, self.morphs)
        return EncodedInstance(item.sop_class, item.sop_instance, item.transfer_syntax,
                               encode_dataset(ds, item.transfer_syntax))

    def _store(self, objects: list[EncodedInstance]) -> list[int]:
        if not objects:
            return []
        contexts: dict[str, list[str]] = {}
        for item in objects:
            syntaxes = contexts.setdefault(item.sop_class, [])
            if item.transfer_syntax not in syntaxes:
                syntaxes.append(item.transfer_syntax)
        client = FastClient(actor="migrate-relay", events=self.events, dimse_timeout=self.timeout)
        try:
            client.connect(self.target.host, self.target.port, self.calling_ae,
                           self.target.ae_title, list(contexts.items()), timeout=self.timeout)
            statuses = []
            for item in objects:
                try:
                    statuses.append(client.store(item))
                except ProtocolError:  # the target refused this SOP class / syntax
                    statuses.append(STATUS_SOP_CLASS_NOT_SUPPORTED)
            return statuses
        finally:
            client.close()


__all__ = ["Mover", "TransferOutcome", "Sessions", "VIA"]
