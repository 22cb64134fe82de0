"""pacsim's HTTP plumbing: one JSON server base, one JSON client, one error body.

:mod:`.server` is the base of the DICOMweb endpoint, the actors' control API and the
trainer API; :mod:`.client` is how pacsim calls HTTP services (the control API, the
trainer API, Orthanc's REST API); :mod:`.problem` is the error body both speak. The
package sits with the protocols: it imports only :mod:`simulators.errors` and
:mod:`simulators.events` from pacsim.
"""
