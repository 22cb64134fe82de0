"""Every modality's images pass dicom3tools' dciodvfy with zero errors.

dciodvfy checks each file against the IOD its SOP Class names (modules, types, VRs,
defined terms, code values). Warnings are allowed only from a short, documented list,
so a new warning is noticed instead of silently accumulating.
"""

from __future__ import annotations

import re
import subprocess
from io import BytesIO
from pathlib import Path

import pytest
from pydicom.dataset import Dataset
from pynetdicom.dsutils import decode, encode

from simulators.world.catalogue import CATALOGUE
from simulators.world.context import StudyContext
from simulators.world.images import build_study, write_study
from simulators.world.models import Procedure
from simulators.world.world import World
from tests.helpers import require_tool

pytestmark = pytest.mark.dciodvfy

#: IOD name dciodvfy prints first, by modality: proves the SOP Class is the intended one.
EXPECTED_IOD = {"CT": "CTImage", "MR": "MRImage", "CR": "CRImage",
                "DX": "DXImageForPresentation", "MG": "MammographyImageForPresentation",
                "US": "USImage"}
#: Known, accepted warnings: local coding schemes ("99" prefix, PS3.3 8.2) are legal but
#: unknown to dciodvfy; MG View Position CC/MLO is what IHE Mammography expects.
ALLOWED_WARNINGS = (
    re.compile(r"Unrecognized defined term <99\w+> for value 1 of attribute "
               r"<Coding Scheme Designator>"),
    re.compile(r"Unrecognized defined term <(CC|MLO)> for value 1 of attribute "
               r"<View Position>"),
)
VIEWS_PER_MODALITY = {"MG": 4, "CR": 2, "DX": 2}


def _validate(path: Path, allowed_warnings: tuple[re.Pattern[str], ...] = ALLOWED_WARNINGS
              ) -> tuple[str, list[str], list[str]]:
    """Run dciodvfy; return (IOD name, error lines, unexpected warning lines)."""
    result = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True,
                            timeout=60, check=False)
    lines = [line.strip() for line in (result.stdout + result.stderr).splitlines()
             if line.strip()]
    iod = next((line for line in lines
                if not line.startswith(("Error", "Warning"))), "")
    errors = [line for line in lines if line.startswith("Error")]
    warnings = [line for line in lines if line.startswith("Warning")
                and not any(allowed.search(line) for allowed in allowed_warnings)]
    return iod, errors, warnings


def _check_all(paths: list[Path], modality: str,
               also_allowed: tuple[re.Pattern[str], ...] = ()) -> None:
    assert paths, "no files were written"
    for path in paths:
        iod, errors, warnings = _validate(path, ALLOWED_WARNINGS + also_allowed)
        report = f"{path.name}: iod={iod!r}\n" + "\n".join(errors + warnings)
        assert iod == EXPECTED_IOD[modality], report
        assert errors == [], report
        assert warnings == [], report


CASES = [(modality, index) for modality, procedures in CATALOGUE.items()
         for index in range(len(procedures))]


@pytest.fixture(scope="module")
def world() -> World:
    return World(seed=7, non_ascii=0.5)


@pytest.mark.parametrize(("modality", "procedure_index"), CASES,
                         ids=[f"{m}-{i}" for m, i in CASES])
def test_every_catalogue_procedure_is_valid(world: World, tmp_path: Path, modality: str,
                                            procedure_index: int) -> None:
    require_tool("dciodvfy")
    order = world.order(world.patient(procedure_index), modality, station_ae=f"{modality}1",
                        station_name=f"{modality}ROOM1", index=procedure_index)
    ctx = StudyContext.from_order(order, world)
    images = build_study(ctx, series=1, per_series=VIEWS_PER_MODALITY.get(modality, 2))
    _check_all(write_study(images, tmp_path), modality)


@pytest.mark.parametrize("modality", sorted(EXPECTED_IOD))
def test_unscheduled_non_ascii_study_is_valid(tmp_path: Path, modality: str) -> None:
    """No order (no accession, no request attributes) and a UTF-8 name: still valid."""
    require_tool("dciodvfy")
    world = World(seed=11, non_ascii=1.0)
    patient = world.patient(3)
    assert not patient.dicom_name.isascii()
    ctx = StudyContext.unscheduled(patient, world, modality, station_name="ER1", index=1)
    _check_all(write_study(build_study(ctx, per_series=1), tmp_path), modality)


def test_color_ultrasound_is_valid(world: World, tmp_path: Path) -> None:
    require_tool("dciodvfy")
    order = world.order(world.patient(1), "US", station_ae="US1", station_name="US1",
                        index=40)
    images = build_study(StudyContext.from_order(order, world), per_series=1, color=True)
    assert images[0].PhotometricInterpretation == "RGB"
    _check_all(write_study(images, tmp_path), "US")


def test_full_size_ct_is_valid(world: World, tmp_path: Path) -> None:
    require_tool("dciodvfy")
    order = world.order(world.patient(2), "CT", station_ae="CT1", station_name="CT1",
                        index=41)
    images = build_study(StudyContext.from_order(order, world), per_series=1, rows=512,
                         cols=512)
    _check_all(write_study(images, tmp_path), "CT")


def _over_the_wire(ds: Dataset) -> Dataset:
    """Encode and decode like a C-FIND response travels (Explicit VR Little Endian)."""
    wire = encode(ds, is_implicit_vr=False, is_little_endian=True)
    return decode(BytesIO(wire), is_implicit_vr=False, is_little_endian=True)


@pytest.mark.parametrize("modality", sorted(EXPECTED_IOD))
def test_worklist_built_study_is_valid_and_keeps_identity(tmp_path: Path,
                                                          modality: str) -> None:
    """The RIS's real MWL item -> wire codec -> context -> images: valid, same identity."""
    require_tool("dciodvfy")
    # Imported here: the RIS's module is the real producer of worklist items, but a break
    # there should fail these tests only, not every dciodvfy check in this file.
    from simulators.dicom.worklist import build_worklist_item

    world = World(seed=23, non_ascii=1.0)
    order = world.order(world.patient(4), modality, station_ae=f"{modality}1",
                        station_name=f"{modality}ROOM1", index=60)
    item = _over_the_wire(build_worklist_item(order))
    ctx = StudyContext.from_worklist(item, world, station_name=f"{modality}ROOM1")
    assert ctx.identity() == StudyContext.from_order(order, world).identity()
    _check_all(write_study(build_study(ctx, per_series=2), tmp_path), modality)


@pytest.mark.parametrize("modality", sorted(EXPECTED_IOD))
def test_foreign_procedure_from_worklist_is_valid(tmp_path: Path, modality: str) -> None:
    """A code the catalogue does not know leaves the body part unknown: still valid."""
    require_tool("dciodvfy")
    # Imported here: the RIS's module is the real producer of worklist items, but a break
    # there should fail these tests only, not every dciodvfy check in this file.
    from simulators.dicom.worklist import build_worklist_item

    world = World(seed=23)
    order = world.order(world.patient(5), modality, station_ae="X1", station_name="X1",
                        index=61)
    foreign = Procedure(code="EXT-1", meaning="OUTSIDE PROTOCOL", scheme="99OTHER",
                        modality=modality, body_part="")
    item = _over_the_wire(build_worklist_item(order.with_changes(procedure=foreign)))
    ctx = StudyContext.from_worklist(item, world)
    assert ctx.body_part == "" and ctx.station_name == "X1"
    # An unknown body part may be paired: Laterality is sent empty, which dciodvfy
    # notes is "only permitted ... when actually unknown" -- exactly this case.
    unknown_laterality = re.compile(r"only permitted to be empty when actually unknown.*"
                                    r"attribute <Laterality>")
    _check_all(write_study(build_study(ctx, per_series=1), tmp_path), modality,
               also_allowed=(unknown_laterality,))
