"""Query/retrieve as a server: C-FIND, C-MOVE and C-GET, with pynetdicom and DCMTK peers."""

from __future__ import annotations

import pytest
from pydicom.dataset import Dataset
from pynetdicom import AE, build_role, evt

from isengard_sdk.testing import dcmtk_tool
from tests.conftest import sample
from tests.integration.dicom_helpers import free_port, run_dcmtk
from tests.plugins.test_hooks import wait_for

STUDY_FIND = "1.2.840.10008.5.1.4.1.2.2.1"
PATIENT_FIND = "1.2.840.10008.5.1.4.1.2.1.1"
STUDY_MOVE = "1.2.840.10008.5.1.4.1.2.2.2"
STUDY_GET = "1.2.840.10008.5.1.4.1.2.2.3"
CT_STUDY = "1.3.6.1.4.1.5962.1.2.1.20040119072730.12322"


@pytest.fixture
def pacs(isengard_factory, dicom_factory):
    """A server knowing the caller QRSCU, loaded with CT_small, MR_small and a 3-instance
    synthetic study."""
    receiver = isengard_factory({"dicom": {"aet": "RECEIVER"}})
    server = isengard_factory({"modalities": {
        "qrscu": ["QRSCU", "127.0.0.1", free_port()],
        "receiver": ["RECEIVER", "127.0.0.1", receiver.dicom_port]}})
    server.upload(sample("CT_small.dcm"))
    server.upload(sample("MR_small.dcm"))
    for f in dicom_factory.series(3, PatientID="SYN1", PatientName="Synthetic^Anna",
                                  StudyDate="20240305", Modality="MR"):
        server.upload(f)
    server.receiver = receiver
    return server


def c_find(port: int, level: str, model: str = STUDY_FIND, aet: str = "QRSCU",
           **keys) -> tuple[list[int], list[Dataset]]:
    ae = AE(ae_title=aet)
    ae.add_requested_context(model)
    query = Dataset()
    query.QueryRetrieveLevel = level
    for keyword, value in keys.items():
        setattr(query, keyword, value)
    assoc = ae.associate("127.0.0.1", port, ae_title="ISENGARD")
    assert assoc.is_established
    statuses, answers = [], []
    for status, identifier in assoc.send_c_find(query, model):
        statuses.append(int(status.Status))
        if identifier is not None:
            answers.append(identifier)
    assoc.release()
    return statuses, answers


def test_find_studies_with_wildcards_and_computed_attributes(pacs):
    statuses, answers = c_find(pacs.dicom_port, "STUDY", PatientName="comp*ct1",
                               StudyInstanceUID="", StudyDate="", ModalitiesInStudy="",
                               NumberOfStudyRelatedInstances="", StudyDescription="")
    assert statuses[-1] == 0 and len(answers) == 1
    study = answers[0]
    assert study.StudyInstanceUID == CT_STUDY
    assert study.StudyDate == "20040119" and study.ModalitiesInStudy == "CT"
    assert int(study.NumberOfStudyRelatedInstances) == 1
    assert study.StudyDescription == "e+1"
    # only the requested keys (plus the unique keys and the level)
    assert "AccessionNumber" not in study and "StudyTime" not in study
    assert study.QueryRetrieveLevel == "STUDY"


@pytest.mark.parametrize("keys, expected", [
    ({"StudyDate": "20040101-20041231"}, {"1CT1", "4MR1"}),
    ({"StudyDate": "20240305"}, {"SYN1"}),
    ({"StudyDate": "-20040119"}, {"1CT1"}),
    ({"StudyDate": "20040120-"}, {"4MR1", "SYN1"}),
    ({"PatientID": "SYN1\\1CT1"}, {"SYN1", "1CT1"}),
    ({"PatientName": "*ANNA"}, {"SYN1"}),  # person names: case-insensitive
    ({"ModalitiesInStudy": "MR"}, {"SYN1", "4MR1"}),
    ({"StudyInstanceUID": CT_STUDY}, {"1CT1"}),
])
def test_find_matching(pacs, keys, expected):
    statuses, answers = c_find(pacs.dicom_port, "STUDY", **{"PatientID": "", **keys})
    assert statuses[-1] == 0
    assert {a.PatientID for a in answers} == expected


def test_find_every_level(pacs):
    _, patients = c_find(pacs.dicom_port, "PATIENT", PATIENT_FIND, PatientID="",
                         NumberOfPatientRelatedInstances="")
    assert {p.PatientID: int(p.NumberOfPatientRelatedInstances) for p in patients} == {
        "1CT1": 1, "4MR1": 1, "SYN1": 3}
    _, series = c_find(pacs.dicom_port, "SERIES", StudyInstanceUID=CT_STUDY, Modality="",
                       SeriesInstanceUID="", NumberOfSeriesRelatedInstances="")
    assert [(s.Modality, s.NumberOfSeriesRelatedInstances) for s in series] == [("CT", "1")]
    _, images = c_find(pacs.dicom_port, "IMAGE", StudyInstanceUID=CT_STUDY,
                       SeriesInstanceUID=series[0].SeriesInstanceUID, SOPInstanceUID="",
                       InstanceNumber="", ImageType="")
    assert len(images) == 1 and images[0].InstanceNumber == "1"
    assert list(images[0].ImageType) == ["ORIGINAL", "PRIMARY", "AXIAL"]  # from the header


def test_find_limits(isengard_factory, dicom_factory):
    server = isengard_factory({"limit_find_results": 2, "dicom": {"always_allow_find": True}})
    for i in range(4):
        server.upload(dicom_factory.instance(PatientID=f"P{i}"))
    _, answers = c_find(server.dicom_port, "STUDY", aet="ANYONE", PatientID="")
    assert len(answers) == 2


def test_find_from_an_unknown_caller_is_refused(pacs, caplog):
    statuses, answers = c_find(pacs.dicom_port, "STUDY", aet="STRANGER", PatientID="")
    assert answers == [] and statuses[-1] not in (0x0000, 0xFF00)
    assert "STRANGER" in caplog.text and "always_allow_find" in caplog.text


def test_find_with_a_bad_level(pacs):
    statuses, answers = c_find(pacs.dicom_port, "NOPE", PatientID="")
    assert answers == [] and statuses[-1] >= 0xA000


def test_find_with_specific_character_set(isengard_factory, dicom_factory):
    server = isengard_factory({"dicom": {"always_allow_find": True}})
    server.upload(dicom_factory.instance(SpecificCharacterSet="ISO_IR 100",
                                         PatientName="Müller^Jürgen", PatientID="DE1"))
    _, answers = c_find(server.dicom_port, "STUDY", aet="X", SpecificCharacterSet="ISO_IR 192",
                        PatientName="müller*", PatientID="")
    assert [str(a.PatientName) for a in answers] == ["Müller^Jürgen"]


def test_move_to_a_declared_modality(pacs):
    ae = AE(ae_title="QRSCU")
    ae.add_requested_context(STUDY_MOVE)
    assoc = ae.associate("127.0.0.1", pacs.dicom_port, ae_title="ISENGARD")
    query = Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.PatientID = "SYN1"
    query.StudyInstanceUID = pacs.get(f"/studies/{pacs.get('/studies').json()[-1]}").json()[
        "MainDicomTags"]["StudyInstanceUID"]
    responses = [status for status, _ in assoc.send_c_move(query, "RECEIVER", STUDY_MOVE)]
    assoc.release()
    final = responses[-1]
    assert final.Status == 0x0000
    assert final.NumberOfCompletedSuboperations == 3 and final.NumberOfFailedSuboperations == 0
    assert pending_counts(responses) == [2, 1, 0][: len(pending_counts(responses))]
    assert len(pacs.receiver.get("/instances").json()) == 3


def pending_counts(responses):
    return [int(r.NumberOfRemainingSuboperations) for r in responses
            if r.Status == 0xFF00 and "NumberOfRemainingSuboperations" in r]


def test_move_to_an_unknown_destination(pacs):
    ae = AE(ae_title="QRSCU")
    ae.add_requested_context(STUDY_MOVE)
    assoc = ae.associate("127.0.0.1", pacs.dicom_port, ae_title="ISENGARD")
    query = Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.StudyInstanceUID = CT_STUDY
    responses = [status for status, _ in assoc.send_c_move(query, "NOWHERE", STUDY_MOVE)]
    assoc.release()
    assert responses[-1].Status == 0xA801


def test_get_on_the_same_association(pacs):
    received = []
    ae = AE(ae_title="QRSCU")
    ae.add_requested_context(STUDY_GET)
    ae.add_requested_context("1.2.840.10008.5.1.4.1.1.2")  # CT Image Storage
    role = build_role("1.2.840.10008.5.1.4.1.1.2", scp_role=True)

    def on_store(event):
        received.append(event.dataset.SOPInstanceUID)
        return 0x0000

    assoc = ae.associate("127.0.0.1", pacs.dicom_port, ae_title="ISENGARD",
                         ext_neg=[role], evt_handlers=[(evt.EVT_C_STORE, on_store)])
    query = Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.StudyInstanceUID = CT_STUDY
    responses = [status for status, _ in assoc.send_c_get(query, STUDY_GET)]
    assoc.release()
    assert responses[-1].Status == 0x0000
    assert received == ["1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322"]


@pytest.mark.dcmtk
def test_dcmtk_findscu(pacs, tmp_path):
    findscu = dcmtk_tool("findscu")
    out = run_dcmtk(findscu, "-aet", "QRSCU", "-aec", "ISENGARD", "-S", "-k",
                    "QueryRetrieveLevel=STUDY", "-k", "PatientName=Comp*CT1", "-k",
                    "StudyInstanceUID", "-k", "ModalitiesInStudy", "127.0.0.1",
                    str(pacs.dicom_port))
    assert out.returncode == 0, out.stderr
    text = out.stdout + out.stderr
    assert CT_STUDY in text and "ModalitiesInStudy" in text


@pytest.mark.dcmtk
def test_dcmtk_movescu_to_storescp(pacs, tmp_path):
    movescu, storescp = dcmtk_tool("movescu"), dcmtk_tool("storescp")
    import subprocess

    from tests.integration.dicom_helpers import DCMTK_ENV

    port = free_port()
    pacs.put("/modalities/storescp", json={"AET": "STORESCP", "Host": "127.0.0.1",
                                           "Port": port})
    out_dir = tmp_path / "received"
    out_dir.mkdir()
    scp = subprocess.Popen([storescp, "-aet", "STORESCP", "-od", str(out_dir), str(port)],
                           env=DCMTK_ENV, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: _listening(port))
        out = run_dcmtk(movescu, "-aet", "QRSCU", "-aec", "ISENGARD", "-aem", "STORESCP",
                        "-S", "-k", "QueryRetrieveLevel=STUDY", "-k",
                        f"StudyInstanceUID={CT_STUDY}", "127.0.0.1", str(pacs.dicom_port))
        assert out.returncode == 0, out.stdout + out.stderr
        wait_for(lambda: len(list(out_dir.iterdir())) == 1)
    finally:
        scp.terminate()
        scp.wait(10)


@pytest.mark.dcmtk
def test_dcmtk_getscu(pacs, tmp_path):
    getscu = dcmtk_tool("getscu")
    out = run_dcmtk(getscu, "-aet", "QRSCU", "-aec", "ISENGARD", "-S", "-k",
                    "QueryRetrieveLevel=STUDY", "-k", f"StudyInstanceUID={CT_STUDY}",
                    "-od", str(tmp_path), "127.0.0.1", str(pacs.dicom_port))
    assert out.returncode == 0, out.stdout + out.stderr
    assert len([p for p in tmp_path.iterdir() if p.is_file()]) == 1


def _listening(port: int) -> bool:
    import socket

    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_echo_and_store_rights(isengard_factory, dicom_peer, dicom_factory, caplog):
    """Orthanc's rules: unknown callers follow always_allow_echo/store; a declared
    modality follows its own AllowEcho/AllowStore."""
    server = isengard_factory({
        "dicom": {"always_allow_echo": False, "always_allow_store": False},
        "modalities": {"trusted": ["TRUSTED", "127.0.0.1", free_port()],
                       "readonly": {"aet": "READONLY", "host": "127.0.0.1",
                                    "port": free_port(), "allow_store": False}}})
    files = [dicom_factory.instance()]
    from isengard_sdk.testing import DicomPeer

    assert DicomPeer("STRANGER").echo(server.dicom_port) == 0x0124
    assert DicomPeer("STRANGER").store(server.dicom_port, files) == [0x0124]
    assert DicomPeer("READONLY").echo(server.dicom_port) == 0
    # refused for every C-STORE of the association (decided once per association)
    assert DicomPeer("READONLY").store(server.dicom_port, files * 2) == [0x0124] * 2
    assert "READONLY may not store here" in caplog.text
    assert DicomPeer("TRUSTED").store(server.dicom_port, files) == [0]
    assert server.get("/statistics").json()["CountInstances"] == 1


def test_find_with_sequence_matching(isengard_factory, dicom_factory):
    """PS3.4 C.2.2.2.6: a sequence key with values matches the items of the stored
    sequence (here OtherPatientIDsSequence of CT_small: ABCD1234 and 1234ABCD)."""
    server = isengard_factory({"dicom": {"always_allow_find": True}})
    server.upload(sample("CT_small.dcm"))
    server.upload(sample("MR_small.dcm"))

    def find_with(patient_id: str) -> list[str]:
        item = Dataset()
        item.PatientID = patient_id
        item.TypeOfPatientID = ""
        _, answers = c_find(server.dicom_port, "STUDY", aet="X", PatientID="",
                            OtherPatientIDsSequence=[item])
        return [a.PatientID for a in answers]

    assert find_with("1234ABCD") == ["1CT1"]
    assert find_with("ABCD*") == ["1CT1"]
    assert find_with("NOPE") == []
    _, everything = c_find(server.dicom_port, "STUDY", aet="X", PatientID="",
                           OtherPatientIDsSequence=[Dataset()])  # empty item: return key
    assert sorted(a.PatientID for a in everything) == ["1CT1", "4MR1"]


@pytest.mark.parametrize("syntax", ["1.2.840.10008.1.2", "1.2.840.10008.1.2.1",
                                    "1.2.840.10008.1.2.2"])  # the last through pynetdicom
def test_find_many_answers_in_every_syntax(isengard_factory, dicom_factory, syntax):
    """Answers written straight to the socket (little endian) or through pynetdicom (big
    endian): the same answers, every one complete, with a requester whose maximum PDU
    forces answers across several PDUs and writes."""
    server = isengard_factory({"dicom": {"always_allow_find": True}})
    expected = {}
    for n in range(120):
        ds = dicom_factory.dataset(PatientID=f"MANY{n:03d}", PatientName=f"Many^Número{n}",
                                   StudyDescription="x" * (n % 7), StudyDate="20240101")
        server.upload(dicom_factory.encode(ds))
        expected[ds.StudyInstanceUID] = (f"MANY{n:03d}", f"Many^Número{n}", "x" * (n % 7))
    ae = AE(ae_title="X")
    ae.maximum_pdu_size = 64  # ~2 answers' worth of bytes cut in small PDUs
    ae.add_requested_context(STUDY_FIND, [syntax])
    assoc = ae.associate("127.0.0.1", server.dicom_port, ae_title="ISENGARD")
    assert assoc.is_established
    query = Dataset()
    query.QueryRetrieveLevel = "STUDY"
    query.PatientID = "MANY*"
    query.PatientName = ""
    query.StudyDescription = ""
    query.StudyInstanceUID = ""
    query.NumberOfStudyRelatedInstances = ""
    statuses, got = [], {}
    for status, identifier in assoc.send_c_find(query, STUDY_FIND):
        statuses.append(int(status.Status))
        if identifier is not None:
            assert identifier.SpecificCharacterSet == "ISO_IR 192"
            assert identifier.NumberOfStudyRelatedInstances == 1
            got[identifier.StudyInstanceUID] = (identifier.PatientID,
                                                str(identifier.PatientName),
                                                identifier.StudyDescription or "")
    assoc.release()
    assert statuses == [0xFF00] * 120 + [0x0000]
    assert got == expected
