"""The socket fuzzer against in-process RIS, archive and EHR listeners on loopback.

Two minutes in CI (``FUZZ_SECONDS``, default 120; marked slow, so ``make test`` runs
it and ``make test-fast`` does not); ``make fuzz`` runs it longer. The report (cases
per target, operator and send mode, acknowledged instances, resource samples) is
printed and, with ``FUZZ_REPORT=path``, written as JSON.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit

import pytest

from simulators.actors.archive import Archive, ArchiveConfig
from simulators.actors.ehr import Ehr, EhrConfig
from simulators.actors.ris import Ris, RisConfig
from simulators.dicom.fast import codec, dimse
from simulators.events import EventBus
from tests.fuzz import exchanges
from tests.fuzz.socket_fuzzer import (
    FuzzReport, Limits, Sample, SocketFuzzer, Target, acknowledged_stores, acknowledged_stows,
)

SECONDS = float(os.environ.get("FUZZ_SECONDS", "120"))
SEED = int(os.environ.get("FUZZ_SEED", "20261202"))


@pytest.fixture
def listeners(tmp_path: Path) -> Iterator[tuple[Ris, Archive, Ehr]]:
    events = EventBus()
    # short ARTIM/idle timeouts: cut-off exchanges must not pile up for the defaults' 60 s
    with Ris(RisConfig(name="ris-fuzz", network_timeout=5.0, hl7_read_timeout=2.0),
             events=events) as ris, \
            Archive(ArchiveConfig(name="archive-fuzz", storage_dir=tmp_path / "store",
                                  idle_timeout=5.0, dicomweb_port=0),
                    events=events) as archive, \
            Ehr(EhrConfig(name="ehr-fuzz"), events=events) as ehr:
        yield ris, archive, ehr


def targets(ris: Ris, archive: Archive, ehr: Ehr) -> list[Target]:
    ris_ae, arc_ae = ris.config.ae_title, archive.config.ae_title
    return [
        Target("ris-dicom", ris.dicom_address[1], "dicom",
               lambda rng: rng.choice([exchanges.echo, exchanges.mwl_find])(ris_ae), ris_ae),
        Target("archive-dicom", archive.port, "dicom",
               lambda rng: rng.choice([exchanges.echo, exchanges.store, exchanges.store])(arc_ae),
               arc_ae),
        Target("archive-dicomweb", urlsplit(archive.dicomweb_url or "").port or 0, "http",
               exchanges.stow),
        Target("ris-hl7", ris.hl7_address[1], "hl7", exchanges.hl7_to_ris),
        Target("ehr-hl7", ehr.address[1], "hl7", exchanges.hl7_to_ehr),
    ]


def summary(report: FuzzReport) -> str:
    first, last = report.samples[0], report.samples[-1]
    return (f"fuzz: seed {report.seed}, {report.cases} cases in {report.batches} batches, "
            f"{report.acknowledged} instances acknowledged; RSS {first.rss_mb}->{last.rss_mb} MB, "
            f"fds {first.open_fds}->{last.open_fds}, threads {first.threads}->{last.threads}; "
            f"targets {report.by_target}; operators {report.by_operator}; modes {report.by_mode}")


@pytest.mark.slow
@pytest.mark.timeout(SECONDS + 240)
@pytest.mark.filterwarnings("ignore::UserWarning")  # pydicom on damaged values: expected
def test_listeners_survive_damaged_exchanges(listeners: tuple[Ris, Archive, Ehr]) -> None:
    ris, archive, ehr = listeners
    fuzzer = SocketFuzzer(targets(ris, archive, ehr), archive_store=lambda: archive.store,
                          archive_port=archive.port, archive_ae=archive.config.ae_title,
                          seed=SEED)
    report = fuzzer.run(SECONDS)
    print(summary(report))
    if os.environ.get("FUZZ_REPORT"):
        Path(os.environ["FUZZ_REPORT"]).write_text(report.to_json(), encoding="utf-8")
    assert report.batches >= 2 and report.cases >= 2 * fuzzer.batch_size
    assert report.acknowledged >= report.batches  # at least the control stores
    assert not report.failures, "\n".join(report.failures)


def test_fuzzer_checks_can_fail(listeners: tuple[Ris, Archive, Ehr]) -> None:
    """The checks are not vacuous: a lost instance, a dead listener and resource growth
    are each reported (a fuzzer that cannot fail proves nothing)."""
    ris, archive, ehr = listeners
    fuzzer = SocketFuzzer(targets(ris, archive, ehr), archive_store=lambda: archive.store,
                          archive_port=archive.port, archive_ae=archive.config.ae_title,
                          seed=1, batch_size=3, limits=Limits(rss_growth_mb=-1))
    fuzzer.acknowledged.add("1.2.3.4.5.6.7.8.9.never.stored")
    report = FuzzReport(seed=1, seconds=0)
    baseline = Sample(0, 0.0, 0, 0)
    fuzzer.check(report, baseline, 0.0)
    assert any("lost: 1.2.3.4.5.6.7.8.9.never.stored" in f for f in report.failures)
    assert any("RSS" in f for f in report.failures)
    ehr.stop()
    report = FuzzReport(seed=1, seconds=0)
    fuzzer.check(report, None, 0.0)
    assert any("ehr-hl7" in f for f in report.failures)


def test_acknowledged_stores_reads_store_responses() -> None:
    request = dimse.c_store_rq(7, exchanges.CT_STORAGE, "1.2.3.4")
    reply = b"".join(codec.message_pdus(dimse.response_to(request, 0x0000), 3, 0))
    failed = b"".join(codec.message_pdus(dimse.response_to(request, 0xA700), 3, 0))
    assert acknowledged_stores(b"\x02\x00\x00\x00\x00\x00" + reply + failed) == ["1.2.3.4"]


def test_acknowledged_stows_reads_stow_responses() -> None:
    body = b'{"00081199": {"vr": "SQ", "Value": [{"00081155": {"vr": "UI", "Value": ["1.2.5"]}}]}}'
    assert acknowledged_stows(b"HTTP/1.0 200 OK\r\nContent-Type: x\r\n\r\n" + body) == ["1.2.5"]
    assert acknowledged_stows(b"HTTP/1.0 409 Conflict\r\n\r\n" + body) == []
    assert acknowledged_stows(b"HTTP/1.0 200 OK\r\n\r\n{not json") == []
