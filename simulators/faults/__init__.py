"""Probing a target with faults: does it answer a broken request as the standard says?

The faults themselves are data in :mod:`simulators.injection` (the catalogue, the
profiles actors carry, the mutations); this engine sends them on purpose and judges:

* :mod:`.raw_dicom` - raw-socket injector for DICOM framing faults;
* :mod:`.probing` and ``probes_*`` - one probe per fault, verdicts, invariants;
* :mod:`.runner`, :mod:`.matrix` - ``pacsim faults run`` and its report.
"""

from simulators.injection.catalogue import BY_ID, CATALOGUE, fault, select
from simulators.injection.model import Expected, Fault, Observation, Outcome
from simulators.injection.profile import PROFILES, FaultInjector, FaultRule, parse_faults

__all__ = ["CATALOGUE", "BY_ID", "fault", "select", "Expected", "Fault", "Observation",
           "Outcome", "PROFILES", "FaultInjector", "FaultRule", "parse_faults"]
