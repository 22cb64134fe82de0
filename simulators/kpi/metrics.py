"""Prometheus exposition of probe results (prometheus_client, its own registry).

Why a private ``CollectorRegistry``: the global one would also export whatever
else a process registered (and tests that build two probers would collide). Names
follow the prometheus_client conventions: ``pacsim_`` prefix, base units (seconds,
bytes per second), ``_total`` for counters. Labels are bounded: ``probe`` (the fixed
probe names), ``target`` (one per prober) and ``outcome`` (ok, fail, timeout,
skipped) - never an accession, UID or error text.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from simulators.errors import ConfigError
from simulators.kpi.result import OK, SKIPPED, ProbeResult

#: 5 ms (a loopback C-ECHO) to 60 s (a big study over a slow WAN link).
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0,
                    30.0, 60.0)


class ProbeMetrics:
    """The collectors, fed one :class:`ProbeResult` at a time."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.duration = Histogram(
            "pacsim_probe_duration_seconds",
            "Latency a probe measured (image loads: until the last byte).",
            ["probe", "target", "outcome"], buckets=DURATION_BUCKETS, registry=self.registry)
        self.runs = Counter("pacsim_probe_runs", "Probe runs by outcome.",
                            ["probe", "target", "outcome"], registry=self.registry)
        self.up = Gauge("pacsim_probe_up", "1 when the last run of the probe succeeded, else 0.",
                        ["probe", "target"], registry=self.registry)
        self.first_byte = Gauge("pacsim_image_load_first_byte_seconds",
                                "Time to the first image byte in the last successful load.",
                                ["probe", "target"], registry=self.registry)
        self.throughput = Gauge("pacsim_image_load_bytes_per_second",
                                "Throughput of the last successful image load.",
                                ["probe", "target"], registry=self.registry)
        self.last_run = Gauge("pacsim_probe_last_run_timestamp_seconds",
                              "When the probe last ran (Unix time).",
                              ["probe", "target"], registry=self.registry)

    def observe(self, result: ProbeResult) -> None:
        labels = (result.probe, result.target)
        self.runs.labels(*labels, result.outcome).inc()
        self.last_run.labels(*labels).set(result.started)
        if result.outcome == SKIPPED:
            return
        self.duration.labels(*labels, result.outcome).observe(result.seconds)
        self.up.labels(*labels).set(1 if result.outcome == OK else 0)
        if result.outcome == OK and "bytes" in result.figures and result.seconds > 0:
            self.throughput.labels(*labels).set(result.figures["bytes"] / result.seconds)
            if "first_byte_seconds" in result.figures:
                self.first_byte.labels(*labels).set(result.figures["first_byte_seconds"])

    def serve(self, host: str, port: int) -> int:
        """Expose ``/metrics`` on host:port (0 = a free port); returns the bound port."""
        try:
            server, _thread = start_http_server(port, addr=host, registry=self.registry)
        except OSError as exc:
            raise ConfigError(f"cannot serve metrics on {host}:{port}: {exc}") from exc
        self._server = server
        return int(server.server_address[1])

    def close(self) -> None:
        server = getattr(self, "_server", None)
        if server is not None:
            server.shutdown()
            server.server_close()
            self._server = None


__all__ = ["ProbeMetrics", "DURATION_BUCKETS"]
