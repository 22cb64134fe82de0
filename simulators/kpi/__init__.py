"""Go-live KPI probes: synthetic transactions with a canary patient against a live target.

``pacsim probe`` (:mod:`simulators.cli.probe`) runs :class:`~simulators.kpi.runner.ProbeRunner`
cycles (probe families in ``probes_dicom``, ``probes_hl7``, ``probes_retrieve``), keeps
every :class:`~simulators.kpi.result.ProbeResult` in SQLite (``store``), exports
Prometheus metrics (``metrics``), compares weeks (``report``) and builds the go-live
review (``golive``: availability, outages, weekly benchmarks; ``golive_text`` and
``golive_html`` word it). ``embedded`` starts the built-in or Orthanc target;
``monitoring`` and ``dashboard`` render the optional Prometheus/Grafana compose services.
"""
