"""The synthetic world: seeded patients, orders, studies and IOD-conformant images.

One ``World(seed)`` is the single source of truth for identities; ``StudyContext``
carries them into images (from an order, or from a worklist item as a modality sees
it) and ``build_study``/``write_study`` turn a context into DICOM objects.
"""

from simulators.world.catalogue import CATALOGUE, MODALITIES
from simulators.world.context import Code, StudyContext
from simulators.world.images import build_study, iter_study, write_study
from simulators.world.models import Order, Patient, Procedure, ScheduledStep
from simulators.world.seeding import is_valid_uid
from simulators.world.world import DEFAULT_UID_ROOT, World

__all__ = [
    "World", "DEFAULT_UID_ROOT", "Patient", "Procedure", "ScheduledStep", "Order",
    "StudyContext", "Code", "build_study", "iter_study", "write_study", "CATALOGUE", "MODALITIES",
    "is_valid_uid",
]
