"""The soak's verdict (benchmarks/soak.py): flat or not, from injected samples.

The soak itself runs for 30 minutes (``make soak``); what must be right in CI is the
judging: a slow leak is caught, noise and warm-up are not mistaken for one, and too
few samples never pass.
"""

from __future__ import annotations

import random
import time

from benchmarks.soak import Sample, Sampler, judge


def series(n: int, rss: float = 100.0, fds: int = 40, threads: int = 20,
           rss_per_sample: float = 0.0, fd_every: int = 0, noise: float = 0.0,
           warmup_jump: float = 0.0) -> list[Sample]:
    rng = random.Random(5)
    out = []
    for i in range(n):
        jump = warmup_jump if i >= n // 10 else 0.0
        out.append(Sample(i * 10.0, rss + jump + i * rss_per_sample + rng.uniform(-noise, noise),
                          fds + (i // fd_every if fd_every else 0), threads))
    return out


def test_steady_figures_with_noise_are_flat() -> None:
    verdict = judge(series(180, noise=8.0))
    assert verdict.flat, verdict.text()
    assert verdict.samples_used == 144 and verdict.warmup_skipped == 36


def test_warm_up_growth_is_skipped() -> None:
    """Caches filling in the first minutes are not a leak."""
    verdict = judge(series(180, warmup_jump=80.0))
    assert verdict.flat, verdict.text()


def test_slow_memory_leak_is_not_flat() -> None:
    verdict = judge(series(180, rss_per_sample=0.5))   # 90 MB over the run
    assert not verdict.flat
    rss = next(m for m in verdict.metrics if m.metric == "rss_mb")
    assert not rss.flat and rss.growth > 32 and rss.slope_per_hour > 100


def test_descriptor_leak_is_not_flat() -> None:
    verdict = judge(series(180, fd_every=5))            # one fd every 50 s
    assert not verdict.flat
    assert [m.metric for m in verdict.metrics if not m.flat] == ["open_fds"]


def test_too_few_samples_never_pass() -> None:
    verdict = judge(series(5))
    assert not verdict.flat and verdict.metrics == []


def test_sampler_samples_until_stopped() -> None:
    reads: list[float] = []

    def read(started: float) -> Sample:
        reads.append(started)
        return Sample(len(reads), 1.0, 1, 1)

    sampler = Sampler(0.01, 0.0, read=read)
    sampler.start()
    for _ in range(500):  # bounded wait, no wall-clock assertion
        if len(sampler.samples) >= 3:
            break
        time.sleep(0.01)
    sampler.stop()
    assert not sampler.is_alive()
    assert len(sampler.samples) >= 3 and [s.at for s in sampler.samples[:3]] == [1, 2, 3]
