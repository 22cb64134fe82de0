"""Faults as data, below the actors that inject them.

Why its own package: every actor (modality, EHR) applies fault profiles to what it
sends, and the probe engine (:mod:`simulators.faults`) sends the same faults on
purpose. Both need the catalogue; neither may import the other's layer.

* :mod:`.model` - a fault, the answer a conformant peer gives, an observation;
* :mod:`.catalogue` - every known fault, its hook, the conformant answer, the section;
* :mod:`.profile` - ``faults: [...]`` on a modality or EHR (rate, nth, every, seed);
* :mod:`.mutations` - what each fault does to an outgoing request.
"""
