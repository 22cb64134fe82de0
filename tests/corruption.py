"""Corrupt a migration target in known ways, behind its back, for the validator's tests.

Why: the validator signs a migration off on what the *target* answers. Its
acceptance test (the target-side corruption matrix) migrates a small legacy, then
damages the target in one known way per study - a lost instance, a lost study, an
altered Patient ID, name or birth date, a series relabelled with another modality,
altered pixels, a lossy recompression - and checks that a validate-only run names
exactly those studies with exactly those classes. This module is the damage, not
the check: each operation acts on a study by its Study Instance UID (so the matrix
reads the same on every target), changes only what its name says, and leaves the
target answering C-FIND and C-GET consistently with the change (the target's index
and its files agree). ``tests/integration/test_corruption_harness.py`` proves that
over the wire for both implementations.

Two targets:

* :class:`BuiltinCorruptor` works on the built-in archive's store (files plus their
  SQLite index), running or not. The store has no delete API (an archive that forgets
  nothing is its contract), so removing rows is done here with SQL on the index,
  in one transaction; re-storing an altered object goes through the store's own
  :meth:`~simulators.dicom.store.DicomStore.put`, so its index rows are the ones the
  archive itself writes. The index answers each study's own demographics at STUDY
  level and below, so a name or birth date change shows on that study only.
* :class:`OrthancCorruptor` uses Orthanc's REST API: ``DELETE /instances/{id}``,
  ``/instances/{id}/modify`` with ``Force`` and ``Keep`` of the three UIDs for
  attribute changes (re-uploaded through ``POST /instances`` after the original is
  deleted: same UIDs, so the original must go first), and a local pydicom rewrite of
  the file for pixel changes (Orthanc does not alter pixel values).

After :meth:`Corruptor.recompress` the two targets answer a C-GET differently, and
the matrix should expect it: the built-in archive never decompresses, so a C-GET
proposing only uncompressed syntaxes (the validator's default) gets a failed
sub-operation (0xA702, "did not return it") and only an RLE proposal gets the
object; Orthanc decompresses it for such a C-GET (values still with the low bit
dropped, so the pixel hash differs either way) and says RLE only through REST
(``/instances/{id}/metadata/TransferSyntax``).

Both pick the same victims for the same data (:func:`pick_instance`,
:func:`pick_series`), and neither may run while the target is storing: the target
is expected idle between the migration and the validate-only run.

Targets that lose images while acknowledging them, for the live half of the matrix:
:func:`lossy_builtin_target` and :func:`lossy_orthanc` keep the first ``keep_first``
instances they receive, then silently drop every instance whose InstanceNumber is 2
(C-STORE answered with success 0x0000).

Example, as the matrix test would use it (``legacy`` is a seeded directory; the
validator assertions are the matrix test's own)::

    report = tmp_path / "report"
    run_migration(MigrationOptions(source=str(legacy), target="builtin", report_dir=report))
    studies = sorted(target_study_uids)          # read from the target by C-FIND
    with BuiltinCorruptor.open(builtin_target_dir(report)) as corrupt:
        lost_sop = corrupt.drop_instance(studies[0])
        corrupt.drop_study(studies[1])
        corrupt.set_patient_id(studies[2], "CORRUPT-1")
        relabelled = corrupt.set_modality(studies[3], "OT")
        corrupt.change_pixels(studies[4])
        syntax = corrupt.recompress(studies[5])
    again = run_migration(MigrationOptions(source=str(legacy), target="builtin",
                                           report_dir=report, validate_only=True))
    # expected: studies[0] sop-uid-set/instance-count naming lost_sop,
    # studies[1] missing-study, studies[2] demographics, studies[3] modality,
    # studies[4] and studies[5] pixel-hash; every other study validated.

On Orthanc, choose the patient-level victims among studies alone of their patient:
Orthanc keeps one patient resource per Patient ID, whose tags its study-level answers
carry, so a change to one study of a shared patient may not show (or show on all).
With ``--target orthanc`` the same calls run inside
``with OrthancCorruptor.on_workdir(report / "orthanc") as corrupt:``; with an Orthanc
the test started itself, on ``OrthancCorruptor(orthanc.rest_url)``.
"""

from __future__ import annotations

import re
import sqlite3
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol, Sequence

import numpy as np
import pydicom
import requests
from pydicom.dataset import Dataset
from pydicom.uid import RLELossless

from simulators.actors.archive import Archive, ArchiveConfig
from simulators.dicom.address import AeAddress
from simulators.dicom.part10 import read_index_keys
from simulators.dicom.store import DicomStore
from simulators.errors import ConfigError, ProtocolError
from simulators.events import EventBus
from simulators.http.client import JsonClient
from simulators.migration.endpoints import BUILTIN_TARGET_AE
from simulators.peers.orthanc import OrthancProcess, OrthancSettings

#: The three UIDs an attribute change must never touch (the matrix matches by them).
UID_KEYWORDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")
#: The InstanceNumber a lossy target stops keeping (as the index normalises IS values).
LOST_INSTANCE_NUMBER = "2"
#: What :func:`recompress` encodes to: RLE Lossless (pydicom's own encoder, no plugin).
RECOMPRESSED_SYNTAX = str(RLELossless)


def builtin_target_dir(report_dir: Path) -> Path:
    """Where ``pacsim migrate --target builtin`` keeps its target archive (the folder
    :func:`simulators.migration.endpoints.open_endpoints` creates under the report)."""
    return Path(report_dir) / "target-archive"


# ---------------------------------------------------------------------- what to corrupt
@dataclass(frozen=True, slots=True)
class InstanceRef:
    """One instance of a study on a target: enough to choose a victim the same way on
    every target (``handle`` is the target's own name for it: a path, an Orthanc ID)."""

    series_uid: str
    sop_uid: str
    instance_number: int
    handle: str


def pick_instance(instances: Sequence[InstanceRef]) -> InstanceRef:
    """The instance :meth:`Corruptor.drop_instance` removes: the highest-numbered one of
    the study's largest series (ties by UID), so the series survives whenever it has
    two or more instances and the same data loses the same instance on any target."""
    if not instances:
        raise ConfigError("the study has no instance on the target", field="study_uid")
    sizes: dict[str, int] = {}
    for item in instances:
        sizes[item.series_uid] = sizes.get(item.series_uid, 0) + 1
    series = min(sizes, key=lambda uid: (-sizes[uid], uid))
    return max((i for i in instances if i.series_uid == series),
               key=lambda i: (i.instance_number, i.sop_uid))


def pick_series(instances: Sequence[InstanceRef]) -> str:
    """The series :meth:`Corruptor.set_modality` relabels: the lowest Series Instance UID."""
    if not instances:
        raise ConfigError("the study has no instance on the target", field="study_uid")
    return min(item.series_uid for item in instances)


def _number(value: Any) -> int:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return 0


# ---------------------------------------------------------------------- pixel transforms
def invert_pixels(ds: Dataset) -> None:
    """Invert every stored bit of native PixelData in place: same transfer syntax, same
    length, every pixel value different (XOR with the BitsStored mask keeps values in
    range, so the object stays valid)."""
    if ds.file_meta.TransferSyntaxUID.is_compressed:
        raise ConfigError("change_pixels needs native (uncompressed) pixel data",
                          field="study_uid", transfer_syntax=str(ds.file_meta.TransferSyntaxUID))
    if "PixelData" not in ds:
        raise ConfigError("the instance has no pixel data", field="study_uid",
                          sop_instance_uid=str(ds.SOPInstanceUID))
    bits = int(ds.BitsAllocated)
    if bits not in (8, 16):
        raise ConfigError("change_pixels handles 8 or 16 bits allocated", field="study_uid",
                          bits_allocated=bits)
    dtype = np.dtype("<u2") if bits == 16 else np.dtype("u1")
    mask = (1 << int(ds.get("BitsStored", bits))) - 1
    raw = np.frombuffer(bytes(ds.PixelData), dtype=dtype)
    ds.PixelData = (raw ^ np.array(mask, dtype=dtype)).astype(dtype).tobytes()


def drop_low_bit(ds: Dataset) -> str:
    """Lossy recompression in place: the low bit of every pixel value dropped, then RLE
    Lossless; returns the new transfer syntax. ConfigError when no value changes (every
    value already even: the "recompression" would not be lossy)."""
    if "PixelData" not in ds:
        raise ConfigError("the instance has no pixel data", field="study_uid",
                          sop_instance_uid=str(ds.SOPInstanceUID))
    values = ds.pixel_array
    quantised = values & ~np.array(1, dtype=values.dtype)
    if np.array_equal(values, quantised):
        raise ConfigError("pixel values are all even: dropping the low bit changes nothing",
                          field="study_uid", sop_instance_uid=str(ds.SOPInstanceUID))
    # pydicom gives a compressed object a new SOP Instance UID by default; the matrix
    # needs the same UIDs (a target that recompressed in place)
    ds.compress(RLELossless, quantised, encoding_plugin="pydicom", generate_instance_uid=False)
    return RECOMPRESSED_SYNTAX


def _set(keyword: str, value: str) -> Callable[[Dataset], None]:
    def change(ds: Dataset) -> None:
        setattr(ds, keyword, value)
    return change


# ---------------------------------------------------------------------- the protocol
class Corruptor(Protocol):
    """Damage one study on a target; every method takes its Study Instance UID.

    An unknown study is a :class:`~simulators.errors.ConfigError` naming
    ``study_uid``. Nothing else on the target changes.
    """

    def drop_instance(self, study_uid: str) -> str:
        """Remove one instance (:func:`pick_instance`); returns its SOP Instance UID."""
        ...

    def drop_study(self, study_uid: str) -> None:
        """Remove the study and every instance of it."""
        ...

    def set_patient_id(self, study_uid: str, value: str) -> None:
        """Every instance of the study gets PatientID ``value``."""
        ...

    def set_patient_name(self, study_uid: str, value: str) -> None:
        """Every instance of the study gets PatientName ``value``."""
        ...

    def set_birth_date(self, study_uid: str, value: str) -> None:
        """Every instance of the study gets PatientBirthDate ``value`` (YYYYMMDD)."""
        ...

    def set_modality(self, study_uid: str, value: str) -> str:
        """Every instance of one series (:func:`pick_series`) gets Modality ``value``;
        returns that Series Instance UID."""
        ...

    def change_pixels(self, study_uid: str) -> None:
        """Every instance's pixel values inverted (:func:`invert_pixels`)."""
        ...

    def recompress(self, study_uid: str) -> str:
        """Every instance lossily recompressed (:func:`drop_low_bit`); returns the new
        transfer syntax UID."""
        ...


# ---------------------------------------------------------------------- built-in archive
class BuiltinCorruptor:
    """Corrupts a built-in archive's :class:`DicomStore` (see the module docstring).

    Use :meth:`open` on a stopped target's directory (``builtin_target_dir(report)``
    after ``run_migration``), or :meth:`of_archive` on a running Archive: its own store
    object then writes, so its readers see every change at their next query.
    """

    def __init__(self, store: DicomStore, *, owned: bool = False) -> None:
        self.store = store
        self._owned = owned

    @classmethod
    def open(cls, root: Path) -> BuiltinCorruptor:
        """A corruptor on the store under ``root`` (opened here, closed by :meth:`close`)."""
        root = Path(root)
        if not (root / "index.sqlite").exists():
            raise ConfigError(f"{root} holds no archive store (no index.sqlite)", field="root")
        return cls(DicomStore(root), owned=True)

    @classmethod
    def of_archive(cls, archive: Archive) -> BuiltinCorruptor:
        """A corruptor on a running Archive's own store."""
        return cls(archive.store)

    def close(self) -> None:
        if self._owned:
            self.store.close()

    def __enter__(self) -> BuiltinCorruptor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- operations ------------------------------------------------------------------
    def drop_instance(self, study_uid: str) -> str:
        victim = pick_instance(self._refs(study_uid))
        self._forget(study_uid, [victim])
        return victim.sop_uid

    def drop_study(self, study_uid: str) -> None:
        self._forget(study_uid, self._refs(study_uid))

    def set_patient_id(self, study_uid: str, value: str) -> None:
        taken = self.store.find_matches("PATIENT", [], ["PatientID"])
        if any(row["PatientID"] == value for row in taken):
            # the study would join that patient's row and show its name and birth date
            raise ConfigError(f"Patient ID {value!r} already exists on the target",
                              field="value")
        self._rewrite(study_uid, self._refs(study_uid), _set("PatientID", value))

    def set_patient_name(self, study_uid: str, value: str) -> None:
        self._rewrite(study_uid, self._refs(study_uid), _set("PatientName", value))

    def set_birth_date(self, study_uid: str, value: str) -> None:
        self._rewrite(study_uid, self._refs(study_uid), _set("PatientBirthDate", value))

    def set_modality(self, study_uid: str, value: str) -> str:
        refs = self._refs(study_uid)
        series = pick_series(refs)
        self._rewrite(study_uid, [r for r in refs if r.series_uid == series],
                      _set("Modality", value))
        return series

    def change_pixels(self, study_uid: str) -> None:
        self._rewrite(study_uid, self._refs(study_uid), invert_pixels)

    def change_pixels_of_one(self, study_uid: str) -> str:
        """Invert the pixels of one instance (:func:`pick_instance`'s); returns its UID."""
        victim = pick_instance(self._refs(study_uid))
        self._rewrite(study_uid, [victim], invert_pixels)
        return victim.sop_uid

    def recompress(self, study_uid: str) -> str:
        syntaxes: set[str] = set()
        self._rewrite(study_uid, self._refs(study_uid), lambda ds: syntaxes.add(drop_low_bit(ds)))
        return syntaxes.pop()

    # -- helpers ---------------------------------------------------------------------
    def _refs(self, study_uid: str) -> list[InstanceRef]:
        stored = self.store.instances(study_uid=study_uid)
        if not stored:
            raise ConfigError(f"study {study_uid} is not on the target", field="study_uid")
        numbers = {row["SOPInstanceUID"]: row["InstanceNumber"] for row in self.store.query(
            "SELECT sop_uid AS SOPInstanceUID, instance_number AS InstanceNumber "
            "FROM instances WHERE study_uid = ?", (study_uid,))}
        return [InstanceRef(i.series_uid, i.sop_instance_uid,
                            _number(numbers.get(i.sop_instance_uid)), str(i.path))
                for i in stored]

    def _forget(self, study_uid: str, victims: Sequence[InstanceRef]) -> None:
        """Remove the victims' index rows (and rows left empty) in one transaction, then
        their files: a target that lost them, as C-FIND, C-GET and a reopen see it."""
        patient = self.store.query("SELECT patient_id FROM studies WHERE study_uid = ?",
                                   (study_uid,))
        conn = sqlite3.connect(self.store.db_path, timeout=30.0, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany("DELETE FROM instances WHERE study_uid = ? AND sop_uid = ?",
                             [(study_uid, v.sop_uid) for v in victims])
            conn.execute("DELETE FROM series WHERE study_uid = ? AND series_uid NOT IN "
                         "(SELECT series_uid FROM instances)", (study_uid,))
            conn.execute("DELETE FROM studies WHERE study_uid = ? AND NOT EXISTS "
                         "(SELECT 1 FROM instances WHERE study_uid = ?)", (study_uid, study_uid))
            if patient:
                conn.execute("DELETE FROM patients WHERE patient_id = ? AND NOT EXISTS "
                             "(SELECT 1 FROM studies WHERE patient_id = ?)",
                             (patient[0][0], patient[0][0]))
            conn.execute("COMMIT")
        finally:
            conn.close()
        for victim in victims:
            Path(victim.handle).unlink(missing_ok=True)

    def _rewrite(self, study_uid: str, victims: Sequence[InstanceRef],
                 change: Callable[[Dataset], object]) -> None:
        """Read each victim, ``change`` it, forget the originals, store the results
        through the store's own ``put`` (new index rows written as the archive would).
        Every change is made before anything is forgotten, so one that raises (no pixel
        data, nothing to make lossy) leaves the target as it was."""
        altered = []
        for victim in victims:
            ds = pydicom.dcmread(victim.handle)
            change(ds)
            altered.append(ds)
        self._forget(study_uid, victims)
        for ds in altered:
            outcome = self.store.put(ds, transfer_syntax=str(ds.file_meta.TransferSyntaxUID))
            if not outcome.ok:
                raise ConfigError(f"the store refused the altered object: 0x{outcome.status:04X}"
                                  f" {outcome.comment}", field="study_uid",
                                  sop_instance_uid=str(ds.SOPInstanceUID))


# ---------------------------------------------------------------------- Orthanc
class OrthancCorruptor:
    """Corrupts a running Orthanc through its REST API (see the module docstring)."""

    def __init__(self, rest_url: str, *, timeout: float = 30.0) -> None:
        self.rest_url = rest_url.rstrip("/")
        self.timeout = timeout
        self._json = JsonClient(self.rest_url, timeout=timeout, name="Orthanc")

    @classmethod
    @contextmanager
    def on_workdir(cls, workdir: Path) -> Iterator[OrthancCorruptor]:
        """A corruptor on a stopped Orthanc's data: ``--target orthanc`` runs its own
        Orthanc in ``<report>/orthanc`` and stops it with the run, so between the
        migration and the validate-only run this starts one on the same storage and
        index (REST only, fresh ports), and stops it again on exit."""
        workdir = Path(workdir)
        if not (workdir / "index").is_dir():
            raise ConfigError(f"{workdir} holds no Orthanc index", field="workdir")
        with OrthancProcess(OrthancSettings(workdir=workdir)) as orthanc:
            yield cls(orthanc.rest_url)

    # -- operations ------------------------------------------------------------------
    def drop_instance(self, study_uid: str) -> str:
        victim = pick_instance(self._refs(study_uid))
        self._json.delete(f"/instances/{victim.handle}")
        return victim.sop_uid

    def drop_study(self, study_uid: str) -> None:
        self._json.delete(f"/studies/{self._study_id(study_uid)}")

    def set_patient_id(self, study_uid: str, value: str) -> None:
        self._modify(self._refs(study_uid), {"PatientID": value})

    def set_patient_name(self, study_uid: str, value: str) -> None:
        self._modify(self._refs(study_uid), {"PatientName": value})

    def set_birth_date(self, study_uid: str, value: str) -> None:
        self._modify(self._refs(study_uid), {"PatientBirthDate": value})

    def set_modality(self, study_uid: str, value: str) -> str:
        refs = self._refs(study_uid)
        series = pick_series(refs)
        self._modify([r for r in refs if r.series_uid == series], {"Modality": value})
        return series

    def change_pixels(self, study_uid: str) -> None:
        self._rewrite(self._refs(study_uid), invert_pixels)

    def recompress(self, study_uid: str) -> str:
        syntaxes: set[str] = set()
        self._rewrite(self._refs(study_uid), lambda ds: syntaxes.add(drop_low_bit(ds)))
        return syntaxes.pop()

    # -- helpers ---------------------------------------------------------------------
    def _study_id(self, study_uid: str) -> str:
        for item in self._json.post("/tools/lookup", data=study_uid) or []:
            if item.get("Type") == "Study":
                return str(item["ID"])
        raise ConfigError(f"study {study_uid} is not on the target", field="study_uid")

    def _refs(self, study_uid: str) -> list[InstanceRef]:
        study = self._study_id(study_uid)
        series_uids = {s["ID"]: s["MainDicomTags"]["SeriesInstanceUID"]
                       for s in self._json.get(f"/studies/{study}/series")}
        return [InstanceRef(series_uids[i["ParentSeries"]], i["MainDicomTags"]["SOPInstanceUID"],
                            _number(i["MainDicomTags"].get("InstanceNumber")), i["ID"])
                for i in self._json.get(f"/studies/{study}/instances")]

    def _binary(self, method: str, path: str, body: Any = None) -> bytes:
        """A call whose answer is a DICOM file (JsonClient answers JSON only)."""
        with requests.Session() as session:
            session.trust_env = False  # loopback: a proxy from the environment cannot reach it
            reply = session.request(method, self.rest_url + path, json=body, timeout=self.timeout)
        if reply.status_code != 200:
            raise ProtocolError(f"Orthanc answered HTTP {reply.status_code} to {method} {path}: "
                                f"{reply.text[:200]}", peer=self.rest_url)
        return reply.content

    def _replace(self, victims: Sequence[InstanceRef], files: Sequence[bytes]) -> None:
        """Called once every altered file is in hand (a change that raised has deleted
        nothing). Delete the originals first (same UIDs: Orthanc would keep the stored copy and
        ignore the upload), then upload the altered files."""
        for victim in victims:
            self._json.delete(f"/instances/{victim.handle}")
        for data in files:
            answer = self._json.post("/instances", data=data)
            if not isinstance(answer, dict) or answer.get("Status") != "Success":
                raise ProtocolError(f"Orthanc did not store the altered instance: {answer}",
                                    peer=self.rest_url)

    def _modify(self, victims: Sequence[InstanceRef], replace: dict[str, str]) -> None:
        files = [self._binary("POST", f"/instances/{v.handle}/modify",
                              {"Replace": replace, "Keep": list(UID_KEYWORDS), "Force": True})
                 for v in victims]
        self._replace(victims, files)

    def _rewrite(self, victims: Sequence[InstanceRef], change: Callable[[Dataset], object]
                 ) -> None:
        files = []
        for victim in victims:
            ds = pydicom.dcmread(BytesIO(self._binary("GET", f"/instances/{victim.handle}/file")))
            change(ds)
            out = BytesIO()
            ds.save_as(out, enforce_file_format=True)
            files.append(out.getvalue())
        self._replace(victims, files)


# ---------------------------------------------------------------------- lossy targets
class LossyArchive(Archive):
    """The built-in archive, losing images: after the first ``keep_first`` C-STOREs it
    answers success to every instance numbered 2 without keeping it.

    The hook is an override of ``Archive._store_received`` (the blocking half of the
    C-STORE SCP, called with the received bytes): test-only code, no change to the
    archive. If that method is ever renamed the override stops dropping, and the
    harness test that counts the lost instances fails.
    """

    def __init__(self, config: ArchiveConfig, events: EventBus | None = None, *,
                 keep_first: int) -> None:
        if keep_first < 0:
            raise ConfigError("keep_first must be 0 or more", field="keep_first")
        super().__init__(config, events)
        self.keep_first = keep_first
        #: SOP Instance UIDs in the order their C-STOREs arrived, and those dropped.
        self.received: list[str] = []
        self.lost: list[str] = []
        self._count_lock = threading.Lock()

    def _store_received(self, data: bytes, transfer_syntax: str, sop_class: str, sop_uid: str,
                        calling: str, detail: dict[str, Any]) -> tuple[int, str]:
        with self._count_lock:
            self.received.append(sop_uid)
            position = len(self.received)
        if position > self.keep_first:
            try:
                number = read_index_keys(data, transfer_syntax)["InstanceNumber"]
            except Exception:  # noqa: BLE001 - unreadable: let the store answer for it
                number = ""
            if number == LOST_INSTANCE_NUMBER:
                with self._count_lock:
                    self.lost.append(sop_uid)
                detail["sop_instance_uid"] = sop_uid
                detail["silently_lost"] = True
                return 0x0000, ""
        return super()._store_received(data, transfer_syntax, sop_class, sop_uid, calling,
                                       detail)


@dataclass
class LossyTarget:
    """A running lossy target: its AE address, the ``--target`` spec for it, the SOP
    Instance UIDs it has dropped so far (``lost()``) and every one it was sent, in
    arrival order (``received()``)."""

    address: AeAddress
    lost: Callable[[], list[str]]
    received: Callable[[], list[str]]
    archive: LossyArchive | None = None
    orthanc: OrthancProcess | None = None

    @property
    def spec(self) -> str:
        return f"{self.address.ae_title}@{self.address.host}:{self.address.port}"


@contextmanager
def lossy_builtin_target(keep_first: int, *, storage_dir: Path | None = None,
                         ae_title: str = BUILTIN_TARGET_AE,
                         events: EventBus | None = None) -> Iterator[LossyTarget]:
    """A running :class:`LossyArchive` on loopback; pass ``target.spec`` as the
    migration's target (an ``AE@HOST:PORT`` target, so it is not restarted)."""
    archive = LossyArchive(ArchiveConfig(name="lossy-target", ae_title=ae_title,
                                         storage_dir=storage_dir), events, keep_first=keep_first)
    with archive:
        yield LossyTarget(AeAddress(ae_title=ae_title, host="127.0.0.1", port=archive.port),
                          lambda: list(archive.lost), lambda: list(archive.received),
                          archive=archive)


#: Lua for Orthanc: count every instance received, keep the first KEEP_FIRST, then
#: refuse (silently: Orthanc 1.10 still answers the C-STORE with 0x0000) every one
#: numbered 2. Each arrival and each loss is logged (Lua's print goes to Orthanc's
#: log) so a test knows the order and what was lost.
_LOSSY_LUA = """\
pacsim_received = 0
function ReceivedInstanceFilter(dicom, origin, info)
  pacsim_received = pacsim_received + 1
  print("pacsim-received " .. dicom.SOPInstanceUID)
  if pacsim_received > {keep_first} and tonumber(dicom.InstanceNumber) == {number} then
    print("pacsim-lost " .. dicom.SOPInstanceUID)
    return false
  end
  return true
end
"""
_LOG_LINE = re.compile(r"pacsim-(received|lost) ([0-9.]+)")


@contextmanager
def lossy_orthanc(keep_first: int, workdir: Path, *, ae_title: str = "ORTHANC"
                  ) -> Iterator[LossyTarget]:
    """A fresh Orthanc whose Lua ``ReceivedInstanceFilter`` loses images as
    :class:`LossyArchive` does; it accepts stores, finds and gets from any AE."""
    if keep_first < 0:
        raise ConfigError("keep_first must be 0 or more", field="keep_first")
    workdir.mkdir(parents=True, exist_ok=True)
    script = workdir / "lossy.lua"
    script.write_text(_LOSSY_LUA.format(keep_first=int(keep_first),
                                        number=int(LOST_INSTANCE_NUMBER)))
    settings = OrthancSettings(ae_title=ae_title, workdir=workdir, extra={
        "LuaScripts": [str(script)], "DicomAlwaysAllowStore": True,
        "DicomAlwaysAllowFind": True, "DicomAlwaysAllowGet": True})
    with OrthancProcess(settings) as orthanc:
        def logged(what: str) -> list[str]:
            log = orthanc.log_path.read_text(errors="replace")
            return [uid for kind, uid in _LOG_LINE.findall(log) if kind == what]
        yield LossyTarget(AeAddress(ae_title=ae_title, host="127.0.0.1", port=orthanc.dicom_port),
                          lambda: logged("lost"), lambda: logged("received"), orthanc=orthanc)


__all__ = ["Corruptor", "BuiltinCorruptor", "OrthancCorruptor", "InstanceRef", "pick_instance",
           "pick_series", "invert_pixels", "drop_low_bit", "builtin_target_dir", "LossyArchive",
           "LossyTarget", "lossy_builtin_target", "lossy_orthanc", "RECOMPRESSED_SYNTAX",
           "LOST_INSTANCE_NUMBER", "UID_KEYWORDS"]
