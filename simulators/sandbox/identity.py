"""Who the sandbox's patients are and how its identifiers are numbered, per epoch.

Why epochs: a trainer resets the sandbox many times against the same target (an
Orthanc that keeps what it was sent). Every identifier therefore carries the epoch,
a base-36 stamp of the second the epoch began (strictly increasing, even for two
resets in one second): patient IDs ``SBX<epoch>-0001``, accessions
``SBX<epoch>0000001`` (16 characters, the SH limit), placer/filler numbers, step IDs,
and Study Instance UIDs under a UID root of their own (``<root>.7.<epoch seconds>``).
Nothing of an earlier epoch can be produced again.

Names can never be mistaken for real patients: every family name starts with
``ZZTRAIN`` (a trainer's "Mrs Training Smith" becomes ``ZZTRAIN-SMITH^Mrs Training``)
and the others come from a fixed fictional list.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import itertools
import random
import threading
import time

from simulators.errors import ConfigError
from simulators.world.models import Order, Patient, Procedure
from simulators.world.world import DEFAULT_UID_ROOT, World

NAME_PREFIX = "ZZTRAIN"
ID_PREFIX = "SBX"
ISSUER = "PACSIM_SANDBOX"
_DIGITS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
#: Fictional family and given names (none is a plausible full real identity once prefixed).
FAMILIES = ("ALDER", "BRAMBLE", "CINDER", "DAPPLE", "EMBER", "FENWICK", "GARNET", "HOLLOW",
            "INKWELL", "JUNIPER", "KESTREL", "LANTERN", "MARIGOLD", "NETTLE", "OSPREY",
            "PEBBLE", "QUILL", "RUSSET", "SORREL", "THISTLE", "UMBER", "VESPER", "WILLOW",
            "YARROW")
GIVEN = {"F": ("Ada", "Bea", "Cora", "Dot", "Elsie", "Flo", "Greta", "Hattie"),
         "M": ("Alf", "Bert", "Cyril", "Don", "Ernie", "Fred", "Gus", "Hal")}
_last_epoch = 0
_epoch_lock = threading.Lock()


def base36(number: int) -> str:
    if number < 0:
        raise ValueError("base36 takes non-negative numbers")
    text = ""
    while True:
        number, digit = divmod(number, 36)
        text = _DIGITS[digit] + text
        if number == 0:
            return text


def next_epoch_number() -> int:
    """Unix seconds now, or one more than the last epoch of this process."""
    global _last_epoch
    with _epoch_lock:
        _last_epoch = max(int(time.time()), _last_epoch + 1)
        return _last_epoch


def training_name(display: str) -> tuple[str, str]:
    """``"Mrs Training Smith"`` -> (``ZZTRAIN-SMITH``, ``Mrs Training``): family, given."""
    words = display.replace("^", " ").split()
    if not words or len(display) > 60:
        raise ConfigError("a patient name is one to a few words, at most 60 characters",
                          name=display)
    family, given = words[-1].upper(), " ".join(words[:-1]) or "Trainee"
    if not family.startswith(NAME_PREFIX):
        family = f"{NAME_PREFIX}-{family}"
    return family[:40], given[:40]


class Epoch:
    """One sandbox epoch: its stamp, its world (UID root) and its counters."""

    def __init__(self, seed: int, number: int | None = None) -> None:
        self.number = next_epoch_number() if number is None else number
        self.tag = base36(self.number)
        if len(self.tag) > 6:
            raise ConfigError("epoch stamp too long for 16-character accessions", epoch=self.tag)
        self.world = World(seed, uid_root=f"{DEFAULT_UID_ROOT}7.{self.number}.",
                           issuer=ISSUER, institution="ZZTRAIN Training Hospital")
        self._random = random.Random(seed * 1_000_003 + self.number)
        self._patients = itertools.count(1)
        self._orders = itertools.count(1)
        self._lock = threading.Lock()

    @property
    def started(self) -> str:
        return dt.datetime.fromtimestamp(self.number, dt.timezone.utc).isoformat()

    def patient(self, display: str | None = None) -> Patient:
        """A new training patient (named by the trainer, or from the fictional list)."""
        with self._lock:
            number = next(self._patients)
            sex = self._random.choice("FM")
            if display:
                family, given = training_name(display)
            else:
                family = f"{NAME_PREFIX}-{self._random.choice(FAMILIES)}"
                given = self._random.choice(GIVEN[sex])
            days = self._random.randrange(365 * 18, 365 * 90)
        birth = dt.date.today() - dt.timedelta(days=days)
        return Patient(patient_id=f"{ID_PREFIX}{self.tag}-{number:04d}", issuer=ISSUER,
                       family_name=family, given_name=given, birth_date=birth, sex=sex)

    def order(self, patient: Patient, modality: str, *, station_ae: str, station_name: str,
              procedure: Procedure | None = None, priority: str = "ROUTINE",
              start: dt.datetime | None = None) -> Order:
        """A new order whose every number carries the epoch (see the module docstring)."""
        with self._lock:
            number = next(self._orders)
        if procedure is None:
            procedure = self.world.procedure(modality, self._random.randrange(100))
        order = self.world.order(patient, modality, station_ae=station_ae,
                                 station_name=station_name, index=number, start=start,
                                 priority=priority, procedure=procedure)
        serial = f"{self.tag}{number:07d}"
        step = dataclasses.replace(order.step, step_id=f"S{serial}")
        return order.with_changes(accession=f"{ID_PREFIX}{serial}",
                                  placer_number=f"PL{serial}", filler_number=f"FL{serial}",
                                  requested_procedure_id=f"R{serial}", step=step)


__all__ = ["Epoch", "training_name", "base36", "next_epoch_number", "NAME_PREFIX", "ID_PREFIX"]
