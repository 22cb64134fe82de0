"""The seeded synthetic world: patients, procedures, orders and UIDs.

Every value is derived from ``(seed, kind, index)`` (see seeding.py), so the same seed
gives the same world whatever order records are requested in, and two processes (an EHR
container and a modality container, say) agree on identities without talking.

Identifiers are obviously synthetic ("PSM..." patient IDs, "AC..." accessions) so they
can never be mistaken for real MRNs if they leak into a production system.
"""

from __future__ import annotations

import datetime as dt
import threading
from functools import lru_cache

from faker import Faker

from simulators.errors import ConfigError, WorldError
from simulators.world.catalogue import find_procedure, procedures_for
from simulators.world.models import Order, Patient, Procedure, ScheduledStep
from simulators.world.seeding import derived_random, derived_uid, normalise_uid_root

DEFAULT_UID_ROOT = "1.2.826.0.1.3680043.10.1011."
UTF8 = "ISO_IR 192"
ASCII_LOCALE = "en_US"
NON_ASCII_LOCALES = ("de_DE", "fr_FR", "es_ES")
PRIORITIES = ("STAT", "HIGH", "ROUTINE", "MEDIUM", "LOW")
#: Widest index that keeps "SPS" + 3 seed digits + index within the 16 chars of SH.
MAX_INDEX = 10**10 - 1
_BIRTH_FIRST = dt.date(1930, 1, 1)
_BIRTH_SPAN_DAYS = (dt.date(2015, 12, 31) - _BIRTH_FIRST).days
#: If a non-ASCII locale keeps producing plain ASCII names, fall back to these.
_ACCENTED_FALLBACK = (("Müller", "Jürgen"), ("Lefèvre", "Hélène"), ("Núñez", "José"),
                      ("Çelik", "Zoë"), ("Størmer", "Åsa"))
_NON_ASCII_ATTEMPTS = 8


@lru_cache(maxsize=None)
def _faker(locale: str) -> Faker:
    """One Faker per locale per process; reseeded before each use, so sharing is safe
    (Faker construction costs milliseconds, reseeding microseconds)."""
    return Faker(locale)


#: Reseed-then-draw must be atomic: actors generate patients from several threads.
_FAKER_LOCK = threading.Lock()


def _is_ascii(*texts: str) -> bool:
    return all(text.isascii() for text in texts)


class World:
    """A deterministic synthetic world.

    ``non_ascii`` is the fraction (0..1) of patients whose names come from German,
    French or Spanish locales with accented letters; they carry charset "ISO_IR 192".
    """

    def __init__(self, seed: int = 42, uid_root: str = DEFAULT_UID_ROOT,
                 non_ascii: float = 0.0, issuer: str = "PACSIM", *,
                 institution: str = "PACSIM General Hospital") -> None:
        if not 0.0 <= non_ascii <= 1.0:
            raise ConfigError("non_ascii must be a fraction between 0 and 1",
                              non_ascii=non_ascii)
        self.seed = int(seed)
        self.uid_root = normalise_uid_root(uid_root)
        self.non_ascii = non_ascii
        self.issuer = issuer
        self.institution = institution
        # Three seed digits in every identifier: worlds with different seeds sharing a
        # target do not collide on IDs for the first thousand seeds.
        self._tag = f"{self.seed % 1000:03d}"

    def __repr__(self) -> str:
        return f"World(seed={self.seed}, uid_root={self.uid_root!r}, non_ascii={self.non_ascii})"

    # -- identifiers -------------------------------------------------------------------
    def uid(self, kind: str, *parts: object) -> str:
        """A valid UID under ``uid_root`` for ``(seed, kind, parts)``.

        Use a distinct ``kind`` per object type ("study", "series", "mpps", ...); the
        parts can be anything with a stable repr (indexes, accession numbers, UIDs).
        """
        return derived_uid(self.uid_root, self.seed, kind, *parts)

    def _number(self, prefix: str, index: int) -> str:
        if not 0 <= index <= MAX_INDEX:
            raise WorldError("index out of range", index=index, maximum=MAX_INDEX)
        return f"{prefix}{self._tag}{index:07d}"

    # -- patients ----------------------------------------------------------------------
    def patient(self, index: int) -> Patient:
        """Patient number ``index`` of this world (same seed + index, same patient)."""
        patient_id = self._number("PSM", index)
        rng = derived_random(self.seed, "patient", index)
        sex = rng.choices(("F", "M", "O"), weights=(49, 49, 2))[0]
        birth_date = _BIRTH_FIRST + dt.timedelta(days=rng.randrange(_BIRTH_SPAN_DAYS + 1))
        if rng.random() < self.non_ascii:
            family, given = self._non_ascii_name(rng.randrange(2**32), sex)
            charset: str | None = UTF8
        else:
            family, given = self._name(ASCII_LOCALE, rng.randrange(2**32), sex)
            charset = None if _is_ascii(family, given) else UTF8
        return Patient(patient_id=patient_id, issuer=self.issuer, family_name=family,
                       given_name=given, birth_date=birth_date, sex=sex, charset=charset)

    @staticmethod
    def _name(locale: str, seed_value: int, sex: str) -> tuple[str, str]:
        faker = _faker(locale)
        with _FAKER_LOCK:
            faker.seed_instance(seed_value)
            given = {"F": faker.first_name_female, "M": faker.first_name_male}.get(
                sex, faker.first_name)()
            return faker.last_name(), given

    def _non_ascii_name(self, seed_value: int, sex: str) -> tuple[str, str]:
        """A name with at least one non-ASCII letter (bounded retries, then a fallback)."""
        for attempt in range(_NON_ASCII_ATTEMPTS):
            locale = NON_ASCII_LOCALES[(seed_value + attempt) % len(NON_ASCII_LOCALES)]
            family, given = self._name(locale, seed_value + attempt, sex)
            if not _is_ascii(family, given):
                return family, given
        return _ACCENTED_FALLBACK[seed_value % len(_ACCENTED_FALLBACK)]

    def physician(self, kind: str, index: int) -> str:
        """A synthetic physician as a DICOM PN ``FAMILY^GIVEN`` (ASCII, en_US)."""
        rng = derived_random(self.seed, f"physician:{kind}", index)
        family, given = self._name(ASCII_LOCALE, rng.randrange(2**32), "O")
        return f"{family}^{given}"

    # -- procedures and orders -----------------------------------------------------------
    def procedure(self, modality: str, index: int = 0) -> Procedure:
        """Entry ``index`` (wrapping) of the modality's catalogue; WorldError if unknown."""
        catalogue = procedures_for(modality)
        return catalogue[index % len(catalogue)]

    def find_procedure(self, modality: str, *, code: str | None = None,
                       meaning: str | None = None) -> Procedure | None:
        return find_procedure(modality, code=code, meaning=meaning)

    def order(self, patient: Patient, modality: str, *, station_ae: str, station_name: str,
              index: int, start: dt.datetime | None = None, priority: str = "ROUTINE",
              procedure: Procedure | None = None) -> Order:
        """Order number ``index`` of this world for ``patient`` on one modality.

        ``index`` identifies the order: every number and the Study Instance UID derive
        from it, so use one index per order. Without ``start`` the step is scheduled
        today (so "today" worklist queries find it) at a time derived from the index.
        """
        priority = priority.upper()
        if priority not in PRIORITIES:
            raise WorldError("unknown priority", priority=priority,
                             supported=",".join(PRIORITIES))
        chosen = procedure or self.procedure(modality, index)
        if chosen.modality != modality.upper():
            raise WorldError("procedure does not match modality", modality=modality,
                             procedure=chosen.meaning)
        if start is None:
            minutes = 8 * 60 + (index % 30) * 20  # 08:00 .. 17:40 in 20-minute slots
            start = dt.datetime.combine(dt.date.today(), dt.time(minutes // 60, minutes % 60))
        step = ScheduledStep(step_id=self._number("SPS", index), station_ae=station_ae,
                             station_name=station_name, modality=chosen.modality, start=start,
                             description=chosen.meaning,
                             performing_physician=self.physician("performing", index))
        return Order(placer_number=self._number("PL", index),
                     filler_number=self._number("FL", index),
                     accession=self._number("AC", index), patient=patient, procedure=chosen,
                     requested_procedure_id=self._number("RP", index),
                     study_uid=self.uid("study", index), step=step, priority=priority,
                     referring_physician=self.physician("referring", index))

    def performed_step_id(self, study_uid: str, attempt: int = 0) -> str:
        """Performed Procedure Step ID (SH, 16 chars) for one attempt at a study."""
        rng = derived_random(self.seed, "pps-id", study_uid, attempt)
        return f"PPS{rng.randrange(10**12):012d}"


__all__ = ["World", "DEFAULT_UID_ROOT", "UTF8", "PRIORITIES"]
