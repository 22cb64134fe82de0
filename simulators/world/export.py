"""Write one generated study to a directory of DICOM Part 10 files.

Why this exists: the world builds studies only to send them over the network, so a
user could not hand pacsim's images to ``storescu``, a validator or a vendor's import
tool. This module is the non-CLI half of ``pacsim generate study``; it lives below the
CLI so scenarios, tests or other tools can export a study the same way.

Output is deterministic for a seed: the same seed gives the same patient, the same
UIDs and byte-identical files (no clock is read; the exam time derives from the seed).
File names (``IM000001.dcm`` ...) sort in instance order, and a study has one series,
so a plain ``ls`` lists the images in acquisition order.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from pydicom.uid import (
    DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian,
)

from simulators.errors import ConfigError
from simulators.world.catalogue import MODALITIES as CATALOGUE_MODALITIES
from simulators.world.context import StudyContext
from simulators.world.images import IODS, iter_study
from simulators.world.seeding import derived_random
from simulators.world.world import World

#: Modalities a study can be generated for: those with both procedures and an image
#: builder, in catalogue order (which error messages list and order indexes follow).
MODALITIES: tuple[str, ...] = tuple(m for m in CATALOGUE_MODALITIES if m in IODS)
#: Bounded so a typo cannot fill a disk; far below the builder's own limit.
MAX_EXPORT_IMAGES = 2000
#: Transfer syntaxes pydicom writes natively. Compressed ones are refused rather than
#: faked: a file claiming JPEG must hold JPEG, and pacsim has no encoder for it.
WRITABLE_SYNTAXES: dict[str, str] = {
    str(ExplicitVRLittleEndian): "Explicit VR Little Endian",
    str(ImplicitVRLittleEndian): "Implicit VR Little Endian",
    str(DeflatedExplicitVRLittleEndian): "Deflated Explicit VR Little Endian",
}
#: First day an exported exam can fall on; the seed picks a day within four years.
_FIRST_DAY = dt.date(2020, 1, 6)
_SPAN_DAYS = 4 * 365


@dataclass(frozen=True, slots=True)
class ExportedStudy:
    """What was written: enough for a one-line summary and for tests to check."""

    study_uid: str
    patient_id: str
    modality: str
    transfer_syntax: str
    directory: Path
    files: tuple[Path, ...]

    @property
    def transfer_syntax_name(self) -> str:
        return WRITABLE_SYNTAXES[self.transfer_syntax]


def check_modality(modality: str) -> str:
    """The modality in upper case; ConfigError naming the known ones otherwise."""
    normalised = modality.strip().upper()
    if normalised not in MODALITIES:
        raise ConfigError(f"unknown modality {modality!r}; known: {', '.join(MODALITIES)}")
    return normalised


def check_count(count: int) -> int:
    """ConfigError unless 1 <= count <= MAX_EXPORT_IMAGES."""
    if not 1 <= count <= MAX_EXPORT_IMAGES:
        raise ConfigError(f"--count-images must be between 1 and {MAX_EXPORT_IMAGES}",
                          count=count)
    return count


def check_transfer_syntax(uid: str) -> str:
    """The UID if pydicom can write it uncompressed; ConfigError otherwise.

    A compressed syntax (JPEG, RLE, JPEG 2000...) is refused: writing raw pixels under
    a compressed UID would produce files every reader rejects.
    """
    uid = uid.strip()
    if uid not in WRITABLE_SYNTAXES:
        known = ", ".join(f"{value} ({name})" for value, name in WRITABLE_SYNTAXES.items())
        raise ConfigError(f"transfer syntax {uid} is not supported for writing; "
                          f"use one of {known}")
    return uid


def check_empty_directory(out: Path) -> None:
    """ConfigError unless ``out`` is absent or an empty directory.

    Refusing a non-empty directory keeps one study per directory: adding a second
    study's files to a first would make ``storescu +sd DIR`` send a mix nobody asked for.
    """
    if not out.exists():
        return
    if not out.is_dir():
        raise ConfigError("the output path exists and is not a directory", out=str(out))
    if any(out.iterdir()):
        raise ConfigError("the output directory is not empty; remove it or choose another "
                          "--out (writing into it would mix two studies)", out=str(out))


def generated_context(modality: str, seed: int) -> StudyContext:
    """The context of the one scheduled study ``pacsim generate study`` writes.

    Patient 0 of the seed's world; the order index is the modality's position, so a
    CT and an MR export of one seed are two studies (two Study Instance UIDs) of the
    same patient, never one UID with two contents. Performed at a seed-derived time,
    so nothing depends on today's date (``World.order`` would otherwise use today).
    """
    world = World(seed)
    rng = derived_random(world.seed, "export-start", modality)
    day = _FIRST_DAY + dt.timedelta(days=rng.randrange(_SPAN_DAYS))
    start = dt.datetime.combine(day, dt.time(8 + rng.randrange(10), 5 * rng.randrange(12)))
    order = world.order(world.patient(0), modality, station_ae=f"{modality}1",
                        station_name=f"{modality}ROOM1", index=MODALITIES.index(modality),
                        start=start)
    return StudyContext.from_order(order, world)


def export_study(modality: str, count: int, out: str | Path, *, seed: int = 42,
                 transfer_syntax: str = str(ExplicitVRLittleEndian)) -> ExportedStudy:
    """Write ``count`` images of one generated study into ``out`` (created).

    Every argument is checked before anything touches the disk, so bad input leaves no
    half-made directory behind. Images are built and written one at a time, so memory
    stays flat whatever the count.
    """
    modality = check_modality(modality)
    count = check_count(count)
    transfer_syntax = check_transfer_syntax(transfer_syntax)
    target = Path(out)
    check_empty_directory(target)
    ctx = generated_context(modality, seed)
    target.mkdir(parents=True, exist_ok=True)
    files = []
    for ds in iter_study(ctx, series=1, per_series=count):
        ds.file_meta.TransferSyntaxUID = transfer_syntax
        path = target / f"IM{int(ds.InstanceNumber):06d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        files.append(path)
    return ExportedStudy(study_uid=ctx.study_uid, patient_id=ctx.patient_id,
                         modality=modality, transfer_syntax=transfer_syntax,
                         directory=target, files=tuple(files))


__all__ = ["ExportedStudy", "MAX_EXPORT_IMAGES", "MODALITIES", "WRITABLE_SYNTAXES",
           "check_count", "check_empty_directory", "check_modality",
           "check_transfer_syntax", "export_study", "generated_context"]
