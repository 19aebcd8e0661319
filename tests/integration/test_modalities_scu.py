"""Isengard as a DICOM client, driven over REST: modalities, echo, store, jobs."""

from __future__ import annotations

import socket
import threading

import pytest
from pynetdicom import AE, evt

from isengard_sdk import hookimpl
from tests.conftest import dataset_bytes, sample
from tests.plugins.test_hooks import wait_for


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def as_modality(server, **extra) -> dict:
    return {"AET": server.aet, "Host": "127.0.0.1", "Port": server.dicom_port, **extra}


@pytest.fixture
def pair(isengard_factory):
    """A sender and a receiver, the receiver declared in the sender's YAML."""
    receiver = isengard_factory({"dicom": {"aet": "RECEIVER"}})
    sender = isengard_factory({"modalities": {
        "receiver": ["RECEIVER", "127.0.0.1", receiver.dicom_port]}})
    return sender, receiver


def test_modalities_crud_and_persistence(isengard_factory, tmp_path):
    data = tmp_path / "data"
    server = isengard_factory({"modalities": {"pacs": {"aet": "PACS", "host": "127.0.0.1",
                                                       "port": 104}}}, data_dir=data)
    assert server.get("/modalities").json() == ["pacs"]
    r = server.put("/modalities/viewer", json={"AET": "VIEWER", "Host": "127.0.0.1",
                                               "Port": 11112, "AllowFind": False})
    assert r.status_code == 200
    expanded = server.get("/modalities?expand").json()
    assert expanded["viewer"]["AllowFind"] is False and expanded["pacs"]["Port"] == 104
    assert server.get("/modalities/viewer/configuration").json()["AET"] == "VIEWER"
    assert server.put("/modalities/bad", json={"AET": "X", "Host": "h"}).status_code == 400
    assert server.delete("/modalities/pacs").status_code == 400  # from the YAML
    server.stop()
    again = isengard_factory({}, data_dir=data)
    assert again.get("/modalities").json() == ["viewer"]  # REST-declared: kept in the index
    assert again.delete("/modalities/viewer").status_code == 200
    assert again.get("/modalities").json() == []
    assert again.get("/modalities/viewer/configuration").status_code == 404


def test_bad_modality_in_yaml_names_the_path(isengard_factory):
    from isengard.errors import ConfigError

    with pytest.raises(ConfigError, match="modalities.pacs.port"):
        isengard_factory({"modalities": {"pacs": {"aet": "PACS", "host": "h", "port": "x"}}})


def test_echo(pair):
    sender, _ = pair
    assert sender.post("/modalities/receiver/echo", json={}).json() == {}


def test_echo_to_a_peer_that_is_down(isengard_factory):
    server = isengard_factory({"modalities": {"down": ["DOWN", "127.0.0.1", closed_port()]}})
    r = server.post("/modalities/down/echo", json={"Timeout": 2})
    assert r.status_code in (502, 504)
    assert "down" in r.json()["Details"]
    assert server.post("/modalities/nope/echo").status_code == 404


def test_store_synchronous(pair, ct_small):
    sender, receiver = pair
    instance = sender.upload(ct_small)
    answer = sender.post("/modalities/receiver/store", json=[instance["ParentStudy"]]).json()
    assert answer["InstancesCount"] == 1 and answer["FailedInstancesCount"] == 0
    assert answer["RemoteAet"] == "RECEIVER" and answer["LocalAet"] == "ISENGARD"
    assert receiver.get("/instances").json() == [instance["ID"]]
    md = receiver.get(f"/instances/{instance['ID']}/metadata?expand").json()
    assert md["RemoteAET"] == "ISENGARD" and md["CalledAET"] == "RECEIVER"
    received = receiver.get(f"/instances/{instance['ID']}/file").content
    assert dataset_bytes(received) == dataset_bytes(ct_small)  # the dataset, byte for byte
    exports = sender.get("/exports").json()["Exports"]
    assert exports[0]["RemoteModality"] == "receiver"


def test_store_asynchronous_job(pair, dicom_factory):
    sender, receiver = pair
    ids = [sender.upload(f)["ID"] for f in dicom_factory.series(5)]
    r = sender.post("/modalities/receiver/store",
                    json={"Resources": ids, "Asynchronous": True, "Priority": 3})
    job_id = r.json()["ID"]
    assert r.json()["Path"] == f"/jobs/{job_id}"
    wait_for(lambda: sender.get(f"/jobs/{job_id}").json()["State"] == "Success")
    job = sender.get(f"/jobs/{job_id}").json()
    assert job["Type"] == "DicomModalityStore" and job["Progress"] == 100
    assert job["Priority"] == 3 and job["Content"]["InstancesCount"] == 5
    assert set(job) >= {"ID", "Type", "State", "Progress", "ErrorCode", "ErrorDescription",
                        "CreationTime", "EffectiveRuntime", "Content", "CompletionTime"}
    assert job_id in sender.get("/jobs").json()
    assert sender.get("/jobs?expand").json()[-1]["ID"] == job_id
    assert sorted(receiver.get("/instances").json()) == sorted(ids)


def test_store_to_a_peer_that_is_down_fails_the_job(isengard_factory, ct_small):
    server = isengard_factory({"modalities": {"down": ["DOWN", "127.0.0.1", closed_port()]}})
    instance = server.upload(ct_small)
    r = server.post("/modalities/down/store",
                    json={"Resources": [instance["ID"]], "Asynchronous": True})
    job_id = r.json()["ID"]
    wait_for(lambda: server.get(f"/jobs/{job_id}").json()["State"] == "Failure")
    job = server.get(f"/jobs/{job_id}").json()
    assert job["ErrorCode"] == 9 and "DOWN" in job["ErrorDetails"]
    sync = server.post("/modalities/down/store", json=[instance["ID"]])
    assert sync.status_code == 502 and "cannot connect" in sync.json()["Details"]
    # resubmit keeps the job and runs it again
    assert server.post(f"/jobs/{job_id}/resubmit").status_code == 200
    wait_for(lambda: server.get(f"/jobs/{job_id}").json()["State"] == "Failure")


def test_store_bad_requests(pair):
    sender, _ = pair
    assert sender.post("/modalities/receiver/store", json=["nope"]).status_code == 404
    assert sender.post("/modalities/receiver/store", json={"X": 1}).status_code == 400
    assert sender.post("/modalities/nope/store", json=[]).status_code == 404
    assert sender.post("/jobs/nope/cancel").status_code == 404


class ExplicitOnlyPeer:
    """A pynetdicom storage SCP that accepts CT images in explicit VR little endian only."""

    def __init__(self) -> None:
        self.received: list[str] = []
        ae = AE(ae_title="EXPLICIT")
        ae.add_supported_context("1.2.840.10008.5.1.4.1.1.2", ["1.2.840.10008.1.2.1"])
        ae.add_supported_context("1.2.840.10008.5.1.4.1.1.4", ["1.2.840.10008.1.2.1"])

        def on_store(event):
            self.received.append(str(event.context.transfer_syntax))
            return 0x0000

        self.server = ae.start_server(("127.0.0.1", 0), block=False,
                                      evt_handlers=[(evt.EVT_C_STORE, on_store)])
        self.port = self.server.server_address[1]

    def stop(self) -> None:
        self.server.shutdown()


@pytest.fixture
def explicit_peer():
    peer = ExplicitOnlyPeer()
    yield peer
    peer.stop()


def test_uncompressed_syntaxes_are_converted(isengard_factory, explicit_peer):
    server = isengard_factory({"modalities": {"peer": ["EXPLICIT", "127.0.0.1",
                                                       explicit_peer.port]}})
    instance = server.upload(sample("MR_small_bigendian.dcm"))
    answer = server.post("/modalities/peer/store", json=[instance["ID"]]).json()
    assert answer["FailedInstancesCount"] == 0
    assert explicit_peer.received == ["1.2.840.10008.1.2.1"]


class FakeCodec:
    def __init__(self) -> None:
        self.calls: list[tuple[int, str]] = []
        self.lock = threading.Lock()

    @hookimpl
    def transcode(self, context, data, transfer_syntax_uid):
        with self.lock:
            self.calls.append((len(data), transfer_syntax_uid))
        import io

        import pydicom

        ds = pydicom.dcmread(io.BytesIO(data))
        ds.decompress()  # pydicom's own RLE decoder: no extra package needed
        out = io.BytesIO()
        ds.save_as(out, enforce_file_format=True)
        return out.getvalue()


def test_compressed_needs_a_codec_plugin(isengard_factory, explicit_peer):
    rle = sample("MR_small_RLE.dcm")
    plain = isengard_factory({"plugins": {"codecs": False}, "modalities": {
        "peer": ["EXPLICIT", "127.0.0.1", explicit_peer.port]}})
    instance = plain.upload(rle)
    r = plain.post("/modalities/peer/store", json=[instance["ID"]])
    assert r.status_code == 502 and "no codec plugin" in r.json()["Details"]
    assert explicit_peer.received == []

    codec = FakeCodec()
    with_codec = isengard_factory({"plugins": {"codec": {}, "codecs": False}, "modalities": {
        "peer": ["EXPLICIT", "127.0.0.1", explicit_peer.port]}}, plugins=[("codec", codec)])
    with_codec.upload(rle)
    answer = with_codec.post("/modalities/peer/store", json=[instance["ID"]]).json()
    assert answer["FailedInstancesCount"] == 0
    assert codec.calls == [(len(rle), "1.2.840.10008.1.2.1")]
    assert explicit_peer.received == ["1.2.840.10008.1.2.1"]


def test_a_peer_that_never_answers_times_out(isengard_factory, ct_small):
    """TCP connects (the kernel completes the handshake) but no A-ASSOCIATE-AC ever comes:
    504 after the timeout, and the server keeps serving meanwhile."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        server = isengard_factory({"modalities": {"silent": ["SILENT", "127.0.0.1", port]}})
        instance = server.upload(ct_small)
        r = server.post("/modalities/silent/echo", json={"Timeout": 1})
        assert r.status_code == 504, r.text
        job = server.post("/modalities/silent/store", json={
            "Resources": [instance["ID"]], "Asynchronous": True, "Timeout": 1}).json()
        assert server.get("/system").status_code == 200  # not blocked by the hung peer
        wait_for(lambda: server.get(f"/jobs/{job['ID']}").json()["State"] == "Failure")


def test_the_first_party_codecs_plugin_decompresses(isengard_factory, explicit_peer):
    server = isengard_factory({"modalities": {"peer": ["EXPLICIT", "127.0.0.1",
                                                       explicit_peer.port]}})
    assert "codecs" in server.get("/plugins").json()
    instance = server.upload(sample("MR_small_RLE.dcm"))
    answer = server.post("/modalities/peer/store", json=[instance["ID"]]).json()
    assert answer["FailedInstancesCount"] == 0
    assert explicit_peer.received == ["1.2.840.10008.1.2.1"]


# -- the stored bytes go out as they are; peers that refuse, fail, hang or abort ---------

@pytest.fixture
def destinations():
    from tests.integration.test_dicom_move import Destination

    started: list[Destination] = []

    def start(**options) -> Destination:
        started.append(Destination(**options))
        return started[-1]

    yield start
    for destination in started:
        destination.stop()


def sender_to(isengard_factory, destination, **modality):
    return isengard_factory({"modalities": {"dest": {
        "aet": "DEST", "host": "127.0.0.1", "port": destination.port, **modality}}})


@pytest.mark.dcmtk
def test_store_to_dcmtk_storescp_sends_the_stored_data_sets(isengard_factory,
                                                            dicom_factory, tmp_path):
    import subprocess

    from isengard_sdk.testing import dcmtk_tool
    from tests.integration.dicom_helpers import DCMTK_ENV, free_port, split_part10
    from tests.integration.test_dicom_qr import _listening

    files = [sample("CT_small.dcm"), sample("MR_small_bigendian.dcm"),
             dicom_factory.instance(rows=300, columns=301, bits=8)]
    port = free_port()
    scp = subprocess.Popen([dcmtk_tool("storescp"), "-aet", "STORESCP", "+B", "-od",
                            str(tmp_path), str(port)], env=DCMTK_ENV,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        server = isengard_factory({"modalities": {
            "storescp": ["STORESCP", "127.0.0.1", port]}})
        ids = [server.upload(f)["ID"] for f in files]
        wait_for(lambda: _listening(port))
        answer = server.post("/modalities/storescp/store", json=ids).json()
        assert answer["FailedInstancesCount"] == 0
        wait_for(lambda: len(list(tmp_path.iterdir())) == len(files))
    finally:
        scp.terminate()
        scp.wait(10)
    received = sorted(split_part10(p.read_bytes())[1] for p in tmp_path.iterdir())
    assert received == sorted(dataset_bytes(f) for f in files)


def test_store_reports_each_failed_instance(isengard_factory, destinations, dicom_factory):
    destination = destinations(statuses={"1.2.5.2": 0xA700, "1.2.5.3": 0xB000})
    server = sender_to(isengard_factory, destination)
    ids = [server.upload(dicom_factory.instance(SOPInstanceUID=f"1.2.5.{i}"))["ID"]
           for i in (1, 2, 3)]
    r = server.post("/modalities/dest/store", json={"Resources": ids})
    assert r.status_code == 502
    assert "1 of 3 instance(s) could not be sent" in r.json()["Details"]
    assert "status 0xA700" in r.json()["Details"]
    permissive = server.post("/modalities/dest/store",
                             json={"Resources": ids, "Permissive": True}).json()
    assert permissive["FailedInstancesCount"] == 1 and permissive["InstancesCount"] == 3
    assert [r["originator"] for r in destination.received][:1] == [(None, None)]


def test_store_to_a_peer_that_rejects_the_association(isengard_factory, destinations,
                                                      ct_small):
    server = sender_to(isengard_factory, destinations(calling_aets=["SOMEONE"]))
    instance = server.upload(ct_small)
    r = server.post("/modalities/dest/store", json=[instance["ID"]])
    assert r.status_code == 502 and "rejected the association" in r.json()["Details"]


def test_store_to_a_peer_that_aborts(isengard_factory, destinations, dicom_factory):
    destination = destinations(abort_at=2)
    server = sender_to(isengard_factory, destination)
    ids = [server.upload(f)["ID"] for f in dicom_factory.series(3)]
    r = server.post("/modalities/dest/store", json=ids)
    assert r.status_code == 502
    assert "aborted the association (after 1 instance(s) sent)" in r.json()["Details"]
    assert len(destination.received) == 2


def test_store_to_a_peer_that_stops_answering(isengard_factory, destinations, ct_small):
    """The association is accepted but a C-STORE is never answered: the job fails after
    the timeout, and the server keeps serving meanwhile."""
    destination = destinations(hold=1)
    server = sender_to(isengard_factory, destination, timeout=1)
    instance = server.upload(ct_small)
    job = server.post("/modalities/dest/store",
                      json={"Resources": [instance["ID"]], "Asynchronous": True}).json()
    assert destination.holding.wait(30)
    assert server.get("/system").status_code == 200
    wait_for(lambda: server.get(f"/jobs/{job['ID']}").json()["State"] == "Failure")
    assert "did not answer the C-STORE" in server.get(f"/jobs/{job['ID']}").json()[
        "ErrorDetails"]
    destination.release.set()
    sync = server.post("/modalities/dest/store", json={"Resources": [instance["ID"]],
                                                       "Timeout": 1})
    assert sync.status_code == 200  # released: answered again
