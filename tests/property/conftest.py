"""Hypothesis profiles for the parser property tests.

``ci`` (the default, what ``make test`` runs): a bounded number of examples per
property, derandomized so a CI failure replays exactly, no example database written
into the checkout; the whole property suite stays well under a minute. ``fuzz``
(``make fuzz``, or ``HYPOTHESIS_PROFILE=fuzz``): many more examples, random seeds.
No deadline in either: a loaded CI machine must not turn a slow example into a failure
(the properties bound input sizes instead, so nothing can hang).
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

_COMMON = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                     HealthCheck.data_too_large])
settings.register_profile("ci", max_examples=int(os.environ.get("PROPERTY_EXAMPLES", "60")),
                          derandomize=True, database=None, **_COMMON)
settings.register_profile("fuzz", max_examples=int(os.environ.get("PROPERTY_EXAMPLES", "3000")),
                          **_COMMON)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
