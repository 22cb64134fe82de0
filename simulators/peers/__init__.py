"""Real third-party peers pacsim runs beside itself: DCMTK servers and Orthanc.

Tests, benchmarks and the ``orthanc`` scenario target all start these the same
way (free port, TCP_NODELAY, bounded readiness wait, terminate-then-kill), so the
logic lives here once.
"""
