"""Build and write the objects of a chunk of patient histories (the seeder's worker).

Why two paths: a clean study is most of an archive, and its images differ inside a
series only in a few elements, so it goes through the load engine's image templates
(:class:`simulators.load.images.StudyImages`: the first image of each series is built
and encoded, the others are joined from bytes; byte-identical to a full build). A
study with per-object dirt is built object by object with pydicom, dirt applied, and
encoded. Either way each object is written as a Part 10 file in the archive's layout
(``objects/<study>/<series>/<sop>.dcm``) without an fsync; the seeder indexes the
files in bulk and syncs once at the end.

Runs in worker processes: a job is a small picklable :class:`ChunkJob`, the answer a
:class:`ChunkResult` holding only index rows and defect records for that chunk.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from simulators.dicom.fast.files import encode_dataset
from simulators.dicom.part10 import file_meta_bytes, index_keys
from simulators.dicom.store import object_path
from simulators.legacy.dirt import (
    SPLIT_PATIENT_BASE, StudyDirt, apply_to_instance, dirty_context, plan_patient, profile,
)
from simulators.legacy.history import PatientHistory, StudyPlan
from simulators.legacy.membership import CROSS_STUDY_CLASSES, cross_study_defects
from simulators.quality.values import quiet_pydicom
from simulators.load.images import EXPLICIT_VR_LE, StudyImages
from simulators.load.profile import Images
from simulators.world import StudyContext, World, iter_study

#: Fraction of patients with accented names (written in UTF-8, ISO_IR 192).
NON_ASCII_PATIENTS = 0.1


@dataclass(frozen=True)
class ChunkJob:
    """Patients to seed in one worker call."""

    seed: int
    dirt: str
    objects: str
    rows: int
    histories: tuple[PatientHistory, ...]


@dataclass
class ChunkResult:
    """Index rows ``(keys, path, size)`` and ``(study_uid, class)`` defects of a chunk."""

    instances: list[tuple[dict[str, str], str, int]] = field(default_factory=list)
    defects: list[tuple[str, str]] = field(default_factory=list)
    studies: int = 0
    built_slow: int = 0


@lru_cache(maxsize=4)
def _worlds(seed: int) -> tuple[World, World]:
    """The archive's world, and an all-ASCII one for the patients of split series."""
    return World(seed, non_ascii=NON_ASCII_PATIENTS), World(seed, non_ascii=0.0)


@lru_cache(maxsize=1)
def _images() -> StudyImages:
    """One template cache per process (it is what makes clean studies cheap)."""
    return StudyImages()


def study_context(world: World, plan: StudyPlan) -> StudyContext:
    """The clean context of a planned study: an order performed at its planned time."""
    patient = world.patient(plan.patient_index)
    procedure = world.procedure(plan.modality, plan.procedure_index)
    order = world.order(patient, plan.modality, station_ae=f"LEG_{plan.modality}1",
                        station_name=f"{plan.modality}01", index=plan.index, start=plan.start,
                        procedure=procedure)
    return StudyContext.from_order(order, world)


class _Writer:
    """Writes Part 10 files under ``objects`` and records their index rows."""

    def __init__(self, objects: Path, result: ChunkResult) -> None:
        self.objects, self.result = objects, result
        self._dirs: set[Path] = set()

    def write(self, keys: dict[str, str], payload: bytes | list[bytes] | tuple[bytes, ...]) -> None:
        path = object_path(self.objects, keys)
        if path.parent not in self._dirs:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._dirs.add(path.parent)
        meta = file_meta_bytes(keys["SOPClassUID"], keys["SOPInstanceUID"], EXPLICIT_VR_LE, "")
        parts = [payload] if isinstance(payload, bytes) else list(payload)
        with open(path, "wb") as handle:
            handle.write(meta)
            for part in parts:
                handle.write(part)
        size = len(meta) + sum(len(part) for part in parts)
        self.result.instances.append((keys, str(path), size))


def _clean_study(ctx: StudyContext, plan: StudyPlan, rows: int, writer: _Writer) -> None:
    shape = Images(series=plan.series, per_series=plan.per_series, rows=rows, cols=rows)
    keys: dict[str, str] = {}
    for position, image in enumerate(_images().encoded(ctx, shape)):
        instance = position % plan.per_series + 1
        if instance == 1:
            keys = index_keys(image.series)
        mine = dict(keys, SOPInstanceUID=image.sop_instance, InstanceNumber=str(instance))
        writer.write(mine, image.parts)


def _dirty_study(ctx: StudyContext, plan: StudyPlan, dirt: StudyDirt, rows: int,
                 writer: _Writer, duplicate_uid: str | None) -> None:
    split = None
    if any(cls == "split-study" for cls in dirt.series_defects.values()):
        split = _worlds(ctx.seed)[1].patient(SPLIT_PATIENT_BASE + plan.index)
    images = iter_study(ctx, series=plan.series, per_series=plan.per_series, rows=rows, cols=rows)
    with quiet_pydicom():
        for position, ds in enumerate(images):
            series = position // plan.per_series + 1
            apply_to_instance(ds, dirt, series, split, duplicate_uid if position == 0 else None)
            writer.write(index_keys(ds), encode_dataset(ds, EXPLICIT_VR_LE))


def seed_chunk(job: ChunkJob) -> ChunkResult:
    """Build, dirty and write every study of ``job``; return what the index needs and
    the chunk's defects (cross-study ones derived from the written objects: a chunk
    holds whole patients, membership.py says why that is exact)."""
    world = _worlds(job.seed)[0]
    rates = profile(job.dirt)
    result = ChunkResult()
    writer = _Writer(Path(job.objects), result)
    planned: list[tuple[str, list[str]]] = []  # (study UID, planned classes), in order
    for history in job.histories:
        contexts = {plan.index: study_context(world, plan) for plan in history.studies}
        ascii_study = {index: ctx.charset is None for index, ctx in contexts.items()}
        dirt = plan_patient(job.seed, history, rates, ascii_study)
        for plan in history.studies:
            study_dirt = dirt.get(plan.index)
            ctx = dirty_context(contexts[plan.index], study_dirt)
            if study_dirt is None or not study_dirt.touches_instances:
                _clean_study(ctx, plan, job.rows, writer)
            else:
                duplicate = (contexts[study_dirt.duplicate_of].instance_uid(1, 1)
                             if study_dirt.duplicate_of is not None else None)
                _dirty_study(ctx, plan, study_dirt, job.rows, writer, duplicate)
                result.built_slow += 1
            planned.append((ctx.study_uid, study_dirt.classes if study_dirt else []))
            result.studies += 1
    result.defects = manifest_defects(planned, cross_study_defects(
        keys for keys, _path, _size in result.instances))
    return result


def manifest_defects(planned: list[tuple[str, list[str]]],
                     derived: set[tuple[str, str]]) -> list[tuple[str, str]]:
    """The manifest's ``(study_uid, class)`` records, study by study: the planned
    per-study classes as planned, the cross-study ones as the written objects carry
    them (membership.py: a conflict lists every study of the patient, a plan that
    could not be written lists nothing)."""
    defects = []
    for study_uid, classes in planned:
        defects += [(study_uid, cls) for cls in classes if cls not in CROSS_STUDY_CLASSES]
        defects += [(study_uid, cls) for cls in CROSS_STUDY_CLASSES
                    if (study_uid, cls) in derived]
    return defects


def worker_count(requested: int | None) -> int:
    """Workers to use: as asked, else one per core (at most 4)."""
    if requested is not None:
        return max(1, requested)
    return max(1, min(4, os.cpu_count() or 1))


__all__ = ["ChunkJob", "ChunkResult", "seed_chunk", "study_context", "worker_count",
           "NON_ASCII_PATIENTS"]
