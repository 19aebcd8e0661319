from tests.conftest import sample

CT_ID = "f689ddd2-662f8fe1-8b18180d-ec2a2cee-937917af"


def test_upload_and_browse(isengard_server):
    s = isengard_server
    answer = s.upload(sample("CT_small.dcm"))
    assert answer["ID"] == CT_ID
    assert answer["Status"] == "Success"
    assert s.get("/instances").json() == [CT_ID]
    assert s.get(f"/instances/{CT_ID}").json()["MainDicomTags"]["InstanceNumber"] == "1"


def test_dicom_echo_and_store(isengard_server, dicom_peer, dicom_factory):
    s = isengard_server
    assert dicom_peer.echo(s.dicom_port) == 0
    files = dicom_factory.series(3)
    assert dicom_peer.store(s.dicom_port, files) == [0, 0, 0]
    assert len(s.get("/instances").json()) == 3
