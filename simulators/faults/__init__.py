"""Faults as data: the catalogue, fault profiles for actors, probes and the matrix.

* :mod:`.catalogue` - every known fault, its hook, the conformant answer, the section;
* :mod:`.profile` - ``faults: [...]`` on a modality or EHR (rate, nth, every, seed);
* :mod:`.mutations` - what each fault does to an outgoing request (shared by actors
  and probes);
* :mod:`.raw_dicom`, :mod:`.raw_mllp` - raw-socket injectors for framing faults;
* :mod:`.probing` and ``probes_*`` - one probe per fault, verdicts, invariants;
* :mod:`.runner`, :mod:`.matrix`, :mod:`.commands` - ``pacsim faults run``.
"""

from simulators.faults.catalogue import BY_ID, CATALOGUE, fault, select
from simulators.faults.model import Expected, Fault, Observation, Outcome
from simulators.faults.profile import PROFILES, FaultInjector, FaultRule, parse_faults

__all__ = ["CATALOGUE", "BY_ID", "fault", "select", "Expected", "Fault", "Observation",
           "Outcome", "PROFILES", "FaultInjector", "FaultRule", "parse_faults"]
