"""The control API on loopback: real actors (RIS, EHR, modality, archive, viewer) served
over HTTP, driven through the remote proxies and through raw HTTP requests.

What must hold: a proxy behaves like the actor itself (same results, same exceptions
with the same context, events on the caller's bus, the fault log); only allowlisted
operations run; bad requests get structured 4xx answers and the server keeps serving.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
from dataclasses import dataclass
from typing import Any, Iterator

import pytest
from pydicom.dataset import Dataset

from simulators.actors.archive import Archive, ArchiveConfig
from simulators.actors.ehr import Ehr, EhrConfig
from simulators.actors.modality import NOT_SENT, Exam, Modality, ModalityConfig
from simulators.actors.ris import Ris, RisConfig
from simulators.actors.viewer import Viewer, ViewerConfig, ViewerSource
from simulators.dicom.address import AeAddress
from simulators.errors import AssociationError, ConfigError, ProtocolError
from simulators.events import EventBus, Exchange
from simulators.hl7.messages import oru_r01
from simulators.hl7.mllp import MllpClient
from simulators.runtime.control import ControlServer
from simulators.runtime.remote import (
    ControlClient, RemoteArchive, RemoteEhr, RemoteModality, RemoteRis,
)
from simulators.runtime.remote_viewer import RemoteViewer
from simulators.dicom.qrscu import QrClient
from simulators.world.context import StudyContext
from simulators.world.images import build_study
from simulators.scenario.steps.faults import FaultWatch
from simulators.world.world import World
from tests.helpers import free_port

SEED = 42


@dataclass
class Served:
    world: World
    ris: Ris
    modality: Modality
    remote_ehr: RemoteEhr
    remote_ris: RemoteRis
    remote_modality: RemoteModality
    remote_archive: RemoteArchive
    servers: dict[str, ControlServer]


def _serve(actor: Any, servers: dict[str, ControlServer], stack: list[Any]) -> ControlClient:
    server = ControlServer(actor).start()
    stack.append(server)
    servers[actor.name] = server
    return ControlClient(*server.address, name=actor.name)


@pytest.fixture(scope="module")
def served() -> Iterator[Served]:
    """A small site, each actor on its own bus (as in its own container) and served.
    Shared by the module's tests (each uses its own patients and orders): starting and
    stopping four actors per test would be most of the file's time."""
    world = World(SEED)
    archive = Archive(ArchiveConfig(name="target", ae_title="PACSIM_ARC"), events=EventBus())
    ris = Ris(RisConfig(name="ris", ae_title="GH_RIS"), events=EventBus())
    started: list[Any] = []
    servers: dict[str, ControlServer] = {}
    try:
        for actor in (archive, ris):
            started.append(actor.start())
        ehr = Ehr(EhrConfig(name="ehr", ris_port=ris.hl7_address[1],
                            receiving_application="GH_RIS"), events=EventBus())
        ris_peer = AeAddress(ae_title="GH_RIS", host="127.0.0.1", port=ris.dicom_address[1])
        target = AeAddress(ae_title="PACSIM_ARC", host="127.0.0.1", port=archive.port)
        modality = Modality(ModalityConfig(
            name="ct1", ae_title="CT_ROOM1", station_name="CT1", worklist=ris_peer,
            mpps=ris_peer, store=target, commitment=target, rows=32, cols=32,
            commitment_timeout=10, seed=SEED), world=World(SEED), events=EventBus())
        for actor in (ehr, modality):
            started.append(actor.start())
        local = EventBus()  # the proxies' events; a test reading events makes its own
        yield Served(
            world, ris, modality,
            RemoteEhr("ehr", _serve(ehr, servers, started), address=ehr.address,
                      events=local).start(),
            RemoteRis("ris", _serve(ris, servers, started), dicom_address=ris.dicom_address,
                      hl7_address=ris.hl7_address, events=local).start(),
            RemoteModality("ct1", _serve(modality, servers, started), world=world,
                           address=("127.0.0.1", modality.port), events=local).start(),
            RemoteArchive("target", _serve(archive, servers, started),
                          address=("127.0.0.1", archive.port), events=local).start(),
            servers)
    finally:
        for thing in reversed(started):
            thing.stop()


def _order(served: Served, index: int = 1) -> Any:
    patient = served.world.patient(index)
    order = served.world.order(patient, "CT", station_ae="CT_ROOM1", station_name="CT1",
                               index=index)
    assert served.remote_ehr.admit(patient).code == "AA"
    assert served.remote_ehr.place_order(order).code == "AA"
    return order


def _post(server: ControlServer, path: str, body: bytes,
          headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    connection = http.client.HTTPConnection(*server.address, timeout=10)
    try:
        connection.request("POST", path, body=body,
                           headers={"Content-Type": "application/json", **(headers or {})})
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


# ---------------------------------------------------------------------- the proxies
def test_a_whole_exam_through_the_proxies_matches_the_actors_own_state(served):
    order = _order(served)
    on_ris = served.remote_ris.order(order.accession)
    assert on_ris is not None
    assert (on_ris.accession, on_ris.patient, on_ris.study_uid, on_ris.procedure) == \
        (order.accession, order.patient, order.study_uid, order.procedure)
    assert on_ris == served.ris.order(order.accession)  # nested dataclasses, dates intact

    remote_items = served.remote_modality.query_worklist(AccessionNumber=order.accession)
    local_items = served.modality.query_worklist(AccessionNumber=order.accession)
    assert len(remote_items) == 1
    assert remote_items[0].to_json_dict() == local_items[0].to_json_dict()
    assert served.remote_ris.worklist_items()[0].to_json_dict() == \
        served.ris.worklist_items()[0].to_json_dict()

    exam = served.remote_modality.mpps_start(remote_items[0])
    assert isinstance(exam, Exam) and exam.create_status == 0
    assert exam.context.study_uid == order.study_uid
    assert served.remote_modality.store_study(exam, series=2, per_series=2) == [0, 0, 0, 0]
    assert len(exam.images) == 4 and exam.store_statuses == [0, 0, 0, 0]
    commitment = served.remote_modality.request_commitment(exam)
    assert set(commitment.committed) == {str(ds.SOPInstanceUID) for ds in exam.images}
    assert commitment.same_association is not None
    assert served.remote_modality.mpps_complete(exam) == 0
    assert exam.mpps_status == "COMPLETED"

    (study,) = served.remote_archive.find_studies(AccessionNumber=order.accession)
    assert study["StudyInstanceUID"] == order.study_uid
    assert study["NumberOfStudyRelatedInstances"] == "4"
    assert served.remote_archive.study_count() == len(served.remote_archive.studies()) >= 1
    assert order.study_uid in {s.study_uid for s in served.remote_archive.studies()}
    assert served.remote_ris.order(order.accession).step.status == "COMPLETED"


def test_an_exam_begun_without_mpps_is_handed_over_and_stored(served):
    order = _order(served, index=2)
    (item,) = served.remote_modality.query_worklist(AccessionNumber=order.accession)
    local_exam = served.modality.mpps_start(item)  # an Exam built outside the proxy
    exam = Exam(local_exam.context, local_exam.mpps_uid, item, local_exam.started)
    assert served.remote_modality.store_study(exam, series=1, per_series=3) == [0, 0, 0]
    assert len(exam.images) == 3
    (study,) = served.remote_archive.find_studies(AccessionNumber=order.accession)
    assert study["NumberOfStudyRelatedInstances"] == "3"


def test_events_of_a_remote_operation_reach_the_callers_bus(served, event_bus):
    """A proxy of its own on this test's own bus: every event on it came from this
    test's two calls, whatever the module's other tests did through the shared site."""
    proxy = RemoteEhr("ehr", ControlClient(*served.servers["ehr"].address, name="ehr"),
                      address=served.remote_ehr.address, events=event_bus.bus).start()
    patient = served.world.patient(3)
    order = served.world.order(patient, "CT", station_ae="CT_ROOM1", station_name="CT1",
                               index=3)
    assert proxy.admit(patient).code == "AA"
    assert proxy.place_order(order).code == "AA"
    assert event_bus.kinds() == ["hl7.send", "hl7.send"]
    sent = event_bus.events
    assert [e.actor for e in sent] == ["ehr", "ehr"]
    assert all(e.status == "AA" and e.duration > 0 for e in sent)
    acks = served.remote_ehr.acks
    assert [a.message_type for a in acks[-2:]] == ["ADT^A01", "ORM^O01"]
    assert all(a.code == "AA" and a.control_id for a in acks[-2:])


def test_failures_come_back_as_the_same_error_with_its_context(served):
    closed = free_port()
    nobody = AeAddress(ae_title="NOBODY", host="127.0.0.1", port=closed)
    dead = Modality(ModalityConfig(name="dead", worklist=nobody,
                                   timeout=2), events=EventBus())
    with dead, ControlServer(dead) as server:
        proxy = RemoteModality("dead", ControlClient(*server.address), world=served.world,
                               address=("127.0.0.1", dead.port)).start()
        with pytest.raises(AssociationError) as local:
            dead.query_worklist()
        with pytest.raises(AssociationError) as remote:
            proxy.query_worklist()
    assert remote.value.message == local.value.message
    assert remote.value.context == local.value.context
    order = _order(served, index=4)
    (item,) = served.remote_modality.query_worklist(AccessionNumber=order.accession)
    exam = served.remote_modality.mpps_start(item)
    with pytest.raises(ConfigError) as refused:
        served.remote_modality.mpps_discontinue(exam, reason="999999")
    assert refused.value.context["reason"] == "999999"


def test_the_fault_log_follows_the_remote_injector():
    world = World(SEED)
    ris = Ris(RisConfig(ae_title="GH_RIS"), events=EventBus())
    with ris:
        peer = AeAddress(ae_title="GH_RIS", host="127.0.0.1", port=ris.dicom_address[1])
        scanner = Modality(ModalityConfig(name="ct9", ae_title="CT_ROOM9", worklist=peer,
                                          mpps=peer, faults=("mpps.orphan",)),
                           world=world, events=EventBus())
        order = world.order(world.patient(5), "CT", station_ae="CT_ROOM9",
                            station_name="CT9", index=5)
        ris.schedule(order)
        with scanner, ControlServer(scanner) as server:
            proxy = RemoteModality("ct9", ControlClient(*server.address), world=world,
                                   address=("127.0.0.1", scanner.port)).start()
            (item,) = proxy.query_worklist(AccessionNumber=order.accession)
            exam = proxy.mpps_start(item)
            watch = FaultWatch(proxy)
            assert proxy.mpps_complete(exam) == NOT_SENT
            assert [fault for _, fault, _ in watch.fired()] == ["mpps.orphan"]
            assert proxy.faults.fired == scanner.faults.fired


# ---------------------------------------------------------------------- the HTTP surface
def test_only_allowlisted_operations_run(served):
    server = served.servers["ct1"]
    for name in ("_stop", "stop", "store_files", "__init__", "build_images", "nothing"):
        status, payload = _post(server, f"/v1/op/{name}", b'{"args": {}}')
        assert status == 404, name
        assert payload["error"]["type"] == "ConfigError"
        assert "query_worklist" in payload["error"]["context"]["operations"]
    assert served.modality.running
    health = ControlClient(*server.address).health()
    assert health["kind"] == "modality" and "store_files" not in health["operations"]


@pytest.mark.parametrize("body, status, words", [
    (b"{not json", 400, "not JSON"),
    (b"[1, 2]", 400, "must be an object"),
    (b'{"args": {"patient": {}, "extra": 1}}', 400, "unknown argument(s) extra"),
    (b'{"args": {}}', 400, "missing argument(s) patient"),
    (b'{"args": {"patient": {"patient_id": "X", "issuer": "I", "family_name": "F", '
     b'"given_name": "G", "birth_date": "not-a-date", "sex": "F"}}}', 400,
     "patient.birth_date"),
    (b'{"args": {"patient": {"patient_id": "X", "shoe_size": 44}}}', 400,
     "unknown field(s) shoe_size"),
    (b'{"args": {"patient": "P1"}, "timeout": -1}', 400, "expected Patient"),
])
def test_bad_requests_get_structured_answers(served, body, status, words):
    got, payload = _post(served.servers["ehr"], "/v1/op/admit", body)
    assert got == status
    assert payload["error"]["type"] == "ConfigError"
    assert words in payload["error"]["message"]


def test_an_unknown_exam_and_bad_dicom_json_are_refused(served):
    server = served.servers["ct1"]
    status, payload = _post(server, "/v1/op/mpps_complete", b'{"args": {"exam": "exam-999"}}')
    assert (status, payload["error"]["type"]) == (422, "ConfigError")
    assert "exam-999" in payload["error"]["message"]
    status, payload = _post(server, "/v1/op/mpps_start",
                            b'{"args": {"item": {"00100010": {"vr": "PN", "Value": 5}}}}')
    assert status == 400 and payload["error"]["type"] == "ConfigError"


def test_a_slow_operation_answers_504_and_the_server_keeps_serving():
    silent = socket.create_server(("127.0.0.1", 0))  # accepts, never answers HL7
    try:
        ehr = Ehr(EhrConfig(ris_port=silent.getsockname()[1], timeout=1), events=EventBus())
        with ehr, ControlServer(ehr) as server:
            client = ControlClient(*server.address, name="ehr")
            world = World(SEED)
            reply = client.call("admit", {"patient": _encoded_patient(world)}, timeout=0.3)
            assert isinstance(reply.error, ProtocolError)
            assert "did not finish within 0.3s" in reply.error.message
            assert client.health()["name"] == "ehr"
    finally:
        silent.close()


def test_oversized_and_garbage_requests_do_not_stop_the_server(served):
    server = served.servers["ris"]
    status, payload = _post(server, "/v1/op/order", b"{}",
                            headers={"Content-Length": str(64 * 1024 * 1024)})
    assert status == 413 and payload["error"]["context"]["limit"] == 4 * 1024 * 1024
    for junk in (b"\x00\x01garbage\r\n\r\n", b"POST /v1/op/order HTTP/1.1\r\nContent-Len",
                 b"GET " + b"A" * 70000 + b" HTTP/1.1\r\n\r\n"):
        with socket.create_connection(server.address, timeout=5) as raw:
            raw.sendall(junk)
            raw.shutdown(socket.SHUT_WR)
            raw.recv(4096)
    threads = [threading.Thread(target=lambda: served.remote_ris.orders()) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert served.remote_ris.orders() == served.ris.orders()


def _encoded_patient(world: World) -> dict[str, Any]:
    from simulators.runtime.wire import encode

    return encode(world.patient(0))


def test_the_control_api_binds_loopback_by_default(served):
    assert all(server.address[0] == "127.0.0.1" for server in served.servers.values())
    assert isinstance(served.remote_modality.query_worklist(), list)
    assert all(isinstance(ds, Dataset) for ds in served.remote_ris.worklist_items())


# ---------------------------------------------------------------------- sandbox operations
def test_a_trainer_sets_and_clears_faults_through_the_proxy():
    world = World(SEED)
    ris = Ris(RisConfig(ae_title="GH_RIS"), events=EventBus())
    with ris:
        peer = AeAddress(ae_title="GH_RIS", host="127.0.0.1", port=ris.dicom_address[1])
        scanner = Modality(ModalityConfig(name="ct8", ae_title="CT_ROOM8", worklist=peer,
                                          mpps=peer), world=world, events=EventBus())
        orders = [world.order(world.patient(6 + i), "CT", station_ae="CT_ROOM8",
                              station_name="CT8", index=60 + i) for i in range(2)]
        for order in orders:
            ris.schedule(order)
        with scanner, ControlServer(scanner) as server:
            proxy = RemoteModality("ct8", ControlClient(*server.address), world=world,
                                   address=("127.0.0.1", scanner.port)).start()
            assert proxy.set_faults(["mpps.orphan"]) == ["mpps.orphan"]
            (item,) = proxy.query_worklist(AccessionNumber=orders[0].accession)
            assert proxy.mpps_complete(proxy.mpps_start(item)) == NOT_SENT
            assert [fault for _, fault, _ in proxy.faults.fired] == ["mpps.orphan"]
            with pytest.raises(ConfigError) as unknown:
                proxy.set_faults(["no.such-fault"])
            assert "no.such-fault" in str(unknown.value)
            assert proxy.set_faults(None) == []  # back to the configured (none)
            (item,) = proxy.query_worklist(AccessionNumber=orders[1].accession)
            assert proxy.mpps_discontinue(proxy.mpps_start(item)) == 0  # sent, accepted
            assert proxy.faults.fired == scanner.faults.fired  # the log survived


def test_the_ehr_results_come_back_and_its_logs_can_be_trimmed(served):
    order = _order(served, index=7)
    client = MllpClient(*served.remote_ehr.address, timeout=10)
    try:
        reply = client.send(oru_r01(order, "Synthetic report"))
    finally:
        client.close()
    assert "MSA|AA" in reply
    results = served.remote_ehr.results
    assert results[-1].accession == order.accession and "Synthetic" in results[-1].text
    served.remote_ehr.forget_logs(2)
    assert len(served.remote_ehr.acks) == 2 and len(served.remote_ehr.results) <= 2


# ---------------------------------------------------------------------- the viewer
def test_a_remote_viewer_searches_and_loads_where_its_network_says():
    world = World(SEED)
    archive = Archive(ArchiveConfig(name="pacs", ae_title="PACS_ARC", dicomweb_port=0),
                      events=EventBus())
    viewer = Viewer(ViewerConfig(name="tablet", ae_title="TABLET1"), events=EventBus())
    with archive, viewer, ControlServer(viewer) as server:
        order = world.order(world.patient(9), "CR", station_ae="CR1", station_name="CR1",
                            index=90)
        datasets = build_study(StudyContext.from_order(order, world), series=1, per_series=3)
        target = AeAddress(ae_title="PACS_ARC", host="127.0.0.1", port=archive.port)
        assert QrClient(target, "LOADER", EventBus(), "test").store(datasets) == [0, 0, 0]
        real = ViewerSource(name="target", dicom=target, dicomweb_url=archive.dicomweb_url)
        # What a step on the host passes: ports that mean nothing where the viewer runs.
        published = ViewerSource(name="target",
                                 dicom=AeAddress(ae_title="PACS_ARC", host="127.0.0.1", port=1),
                                 dicomweb_url="http://127.0.0.1:1/x")
        seen: list[Exchange] = []
        bus = EventBus()
        bus.subscribe(seen.append)
        proxy = RemoteViewer("tablet", ControlClient(*server.address), events=bus,
                             address=("127.0.0.1", viewer.port),
                             network_sources={"target": real}).start()
        assert proxy.kind == "viewer" and proxy.config.ae_title == "TABLET1"
        found = proxy.search_studies(published, via="qido", PatientID=order.patient.patient_id)
        assert [s["StudyInstanceUID"] for s in found] == [order.study_uid]
        assert found == viewer.search_studies(real, via="qido",
                                              PatientID=order.patient.patient_id)
        by_find = proxy.search_studies(published, via="find", AccessionNumber=order.accession)
        assert [s["StudyInstanceUID"] for s in by_find] == [order.study_uid]
        wado = proxy.load_study(order.study_uid, "wado", published)
        assert (wado.status, wado.instances) == ("success", 3) and wado.bytes > 0
        got = proxy.load_study(order.study_uid, "get", published)
        assert (got.status, got.instances) == ("success", 3)
        assert {"dicomweb.qido", "dicomweb.wado", "dicom.c-get"} <= \
            {e.kind for e in seen if e.actor == "tablet"}
        with pytest.raises(ConfigError):
            proxy.load_study(order.study_uid, "fax", published)
