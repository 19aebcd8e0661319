"""Browsing, deleting and the change log through the REST API."""

from __future__ import annotations

CT = {
    "patient": "fa558bce-587a86d3-ad0da9b3-9d043d9d-4f5c5718",
    "study": "8a8cf898-ca27c490-d0c7058c-929d0581-2bbf104d",
    "series": "93034833-163e42c3-bc9a428b-194620cf-2c5799e5",
    "instance": "f689ddd2-662f8fe1-8b18180d-ec2a2cee-937917af",
}


def test_resource_json(isengard_server, ct_small):
    s = isengard_server
    s.upload(ct_small)
    patient = s.get(f"/patients/{CT['patient']}").json()
    assert patient["Type"] == "Patient" and patient["Studies"] == [CT["study"]]
    assert patient["MainDicomTags"]["PatientName"] == "CompressedSamples^CT1"
    assert set(patient) == {"ID", "IsStable", "LastUpdate", "MainDicomTags", "Studies", "Type"}
    study = s.get(f"/studies/{CT['study']}").json()
    assert study["ParentPatient"] == CT["patient"]
    assert study["PatientMainDicomTags"]["PatientID"] == "1CT1"
    assert study["MainDicomTags"]["StudyInstanceUID"] == \
        "1.3.6.1.4.1.5962.1.2.1.20040119072730.12322"
    series = s.get(f"/series/{CT['series']}").json()
    assert series["Status"] == "Unknown" and series["ExpectedNumberOfInstances"] is None
    assert series["MainDicomTags"]["Modality"] == "CT"
    instance = s.get(f"/instances/{CT['instance']}").json()
    assert instance["FileSize"] == len(ct_small) and instance["IndexInSeries"] == 1
    assert set(instance) == {"FileSize", "FileUuid", "ID", "IndexInSeries", "MainDicomTags",
                             "ParentSeries", "Type"}
    # relations
    assert s.get(f"/instances/{CT['instance']}/patient").json()["ID"] == CT["patient"]
    assert s.get(f"/instances/{CT['instance']}/series").json()["ID"] == CT["series"]
    assert [i["ID"] for i in s.get(f"/patients/{CT['patient']}/instances").json()] == \
        [CT["instance"]]
    assert [i["ID"] for i in s.get(f"/studies/{CT['study']}/series").json()] == [CT["series"]]
    # Orthanc's JSON: 3-space indent, UTF-8, declared as such
    answer = s.get(f"/patients/{CT['patient']}")
    assert answer.headers["content-type"] == "application/json; charset=utf-8"
    assert answer.text.startswith('{\n   "')


def test_lists_expand_since_limit(isengard_server, dicom_factory):
    s = isengard_server
    ids = [s.upload(dicom_factory.instance(PatientID=f"P{i}"))["ParentPatient"]
           for i in range(5)]
    assert s.get("/patients").json() == ids
    assert s.get("/patients?since=1&limit=2").json() == ids[1:3]
    assert s.get("/patients?limit=2").json() == ids[:2]
    expanded = s.get("/patients?expand").json()
    assert [p["ID"] for p in expanded] == ids and expanded[0]["Type"] == "Patient"
    assert s.get("/patients?limit=abc").status_code == 400


def test_tags_and_metadata_from_the_index(isengard_server, ct_small):
    s = isengard_server
    s.upload(ct_small)
    iid = CT["instance"]
    tags = s.get(f"/instances/{iid}/tags").json()
    assert tags["0010,0010"] == {"Name": "PatientName", "Type": "String",
                                 "Value": "CompressedSamples^CT1"}
    assert tags["7fe0,0010"] == {"Name": "PixelData", "Type": "Null", "Value": None}
    assert s.get(f"/instances/{iid}/simplified-tags").json()["PatientID"] == "1CT1"
    assert s.get(f"/instances/{iid}/tags?short").json()["0010,0020"] == "1CT1"
    header = s.get(f"/instances/{iid}/header").json()
    assert header["0002,0010"]["Value"] == "1.2.840.10008.1.2.1"
    md = s.get(f"/instances/{iid}/metadata?expand").json()
    assert md["Origin"] == "RestApi" and md["RemoteIP"] == "127.0.0.1"
    assert md["TransferSyntax"] == "1.2.840.10008.1.2.1"
    assert md["SopClassUid"] == "1.2.840.10008.5.1.4.1.1.2"
    assert md["PixelDataOffset"] == "6288" and md["IndexInSeries"] == "1"
    assert s.get(f"/instances/{iid}/metadata/Origin").text == "RestApi"
    assert s.get(f"/instances/{iid}/metadata/Nope").status_code == 404
    # the value as stored, padding included (as Orthanc)
    assert s.get(f"/instances/{iid}/content/0010-0010").content == b"CompressedSamples^CT1 "
    assert s.get(f"/instances/{iid}/content/0010-1002/1/0010-0020").content == b"1234ABCD"
    assert "0010-0010" in s.get(f"/instances/{iid}/content").json()


def test_tags_never_reread_the_file(isengard_server, ct_small):
    """Metadata answers come from the index: they survive the file's disappearance."""
    s = isengard_server
    s.upload(ct_small)
    for f in (s.data_dir / "storage").rglob("*"):
        if f.is_file():
            f.unlink()
    assert s.get(f"/instances/{CT['instance']}/tags").status_code == 200
    assert s.get(f"/instances/{CT['instance']}/simplified-tags").json()["Modality"] == "CT"
    r = s.get(f"/instances/{CT['instance']}/file")
    assert r.status_code == 404 and "missing from storage" in r.json()["Details"]


def test_delete_cascades_and_logs_changes(isengard_server, ct_small, mr_small):
    s = isengard_server
    s.upload(ct_small)
    s.upload(mr_small)
    r = s.delete(f"/instances/{CT['instance']}")
    assert r.status_code == 200
    assert r.json() == {"RemainingAncestor": None}
    for level, rid in (("patients", CT["patient"]), ("studies", CT["study"]),
                       ("series", CT["series"]), ("instances", CT["instance"])):
        assert s.get(f"/{level}/{rid}").status_code == 404
    assert s.get("/statistics").json()["CountInstances"] == 1
    assert len([p for p in (s.data_dir / "storage").rglob("*") if p.is_file()]) == 1
    changes = s.get("/changes?limit=100").json()
    types = [c["ChangeType"] for c in changes["Changes"]]
    assert types[:4] == ["NewInstance", "NewSeries", "NewStudy", "NewPatient"]
    assert "Deleted" not in types  # Orthanc signals deletions to plugins, does not log them
    assert changes["Done"] is True and changes["Last"] == changes["Changes"][-1]["Seq"]


def test_delete_keeps_non_empty_parents(isengard_server, dicom_factory):
    s = isengard_server
    files = dicom_factory.series(2)
    first, second = (s.upload(f) for f in files)
    r = s.delete(f"/instances/{first['ID']}").json()
    assert r["RemainingAncestor"] == {"ID": first["ParentSeries"],
                                      "Path": f"/series/{first['ParentSeries']}",
                                      "Type": "Series"}
    assert s.get(f"/series/{first['ParentSeries']}").json()["Instances"] == [second["ID"]]


def test_changes_paging(isengard_server, dicom_factory):
    s = isengard_server
    for _ in range(3):
        s.upload(dicom_factory.instance())
    page = s.get("/changes?limit=5").json()
    assert len(page["Changes"]) == 5 and page["Done"] is False and page["Last"] == 5
    rest = s.get("/changes?since=5&limit=100").json()
    assert rest["Done"] is True and rest["Changes"][0]["Seq"] == 6
    assert s.get("/changes?last").json()["Changes"][0]["Seq"] == rest["Last"]
    assert s.get("/exports").json() == {"Done": True, "Exports": [], "Last": 0}


def test_statistics(isengard_server, ct_small):
    s = isengard_server
    s.upload(ct_small)
    stats = s.get("/statistics").json()
    assert stats["CountInstances"] == 1 and stats["CountPatients"] == 1
    assert stats["TotalDiskSize"] == str(len(ct_small))
    study = s.get(f"/studies/{CT['study']}/statistics").json()
    assert study["CountSeries"] == 1 and study["CountInstances"] == 1
    assert study["DicomDiskSize"] == str(len(ct_small))


def test_unknown_things_are_404_json(isengard_server):
    s = isengard_server
    for path in ("/nope", "/patients/nope", "/instances/0000/tags", "/plugins/nope",
                 "/studies/x/unknown-relation", "/instances/x/file"):
        r = s.get(path)
        assert r.status_code == 404, path
        assert r.json()["HttpStatus"] == 404
    assert s.delete("/patients/nope").status_code == 404


def test_system_reports_the_orthanc_api_level(isengard_server):
    system = isengard_server.get("/system").json()
    assert system["Version"] == "1.10.1" and system["ApiVersion"] == 16
    assert system["Implementation"] == "Isengard"
    assert system["DicomPort"] == isengard_server.dicom_port
    assert system["DicomAet"] == "ISENGARD"
