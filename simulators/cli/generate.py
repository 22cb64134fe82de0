"""``pacsim generate study``: write one generated study as DICOM Part 10 files.

Why: pacsim's images otherwise exist only on the wire, so they could not be handed to
``storescu``, a validator or a vendor's import tool. The work is done by
:mod:`simulators.world.export`; this module only parses arguments and prints one line.

``register(subparsers)`` is called from simulators.cli. Bad input (unknown modality,
count out of range, a compressed transfer syntax, a non-empty ``--out``) raises
ConfigError, which the CLI prints as one line with exit code 2.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from pydicom.uid import ExplicitVRLittleEndian

from simulators.world.export import (
    MAX_EXPORT_IMAGES, MODALITIES, WRITABLE_SYNTAXES, export_study,
)

DEFAULT_SEED = 42


def _study(args: argparse.Namespace) -> int:
    exported = export_study(args.modality, args.count_images, args.out, seed=args.seed,
                            transfer_syntax=args.transfer_syntax)
    print(f"study {exported.study_uid} patient {exported.patient_id} "
          f"{exported.modality}: {len(exported.files)} files in {exported.directory} "
          f"({exported.transfer_syntax_name})", flush=True)
    return 0


def register(subparsers: Any) -> None:
    """Add ``generate study``."""
    generate = subparsers.add_parser(
        "generate", help="write generated DICOM objects to files",
        description="Write objects of the synthetic world as DICOM Part 10 files, for "
                    "storescu, validators or a vendor's import tool.")
    sub = generate.add_subparsers(dest="generate_command", required=True, metavar="WHAT")

    study = sub.add_parser(
        "study", help="one study of one modality as Part 10 files",
        description="Write one generated study (one series) into a new or empty directory; "
                    "the same seed gives byte-identical files.")
    # Not argparse choices: an unknown modality must be one line naming the known ones.
    study.add_argument("--modality", required=True,
                       help=f"one of {', '.join(MODALITIES)}")
    study.add_argument("--count-images", type=int, required=True, metavar="N",
                       help=f"number of images, 1..{MAX_EXPORT_IMAGES}")
    study.add_argument("--out", type=Path, required=True, metavar="DIR",
                       help="output directory, absent or empty (created)")
    study.add_argument("--seed", type=int, default=DEFAULT_SEED,
                       help=f"same seed, same patient, UIDs and bytes (default {DEFAULT_SEED})")
    study.add_argument("--transfer-syntax", default=str(ExplicitVRLittleEndian), metavar="UID",
                       help="one of " + ", ".join(f"{uid} ({name})"
                                                  for uid, name in WRITABLE_SYNTAXES.items())
                            + "; compressed syntaxes are refused")
    study.set_defaults(func=_study)


__all__ = ["register"]
