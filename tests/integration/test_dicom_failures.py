"""C-STOREs that must fail: a failure status, nothing stored, the association and the
server carry on."""

from __future__ import annotations

import io
from pathlib import Path

import pynetdicom._config
from pydicom.dataset import FileMetaDataset
from pydicom.filewriter import write_file_meta_info
from pynetdicom import AE

from isengard_sdk import IncomingInstance, hookimpl
from tests.integration.dicom_helpers import instance_id_of, storage_files

CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
EXPLICIT_LE = "1.2.840.10008.1.2.1"
DEFLATED = "1.2.840.10008.1.2.1.99"

# C-STORE failure statuses, PS3.4 B.2.3: A7xx refused (out of resources), A9xx data set
# does not match SOP class, Cxxx cannot understand.
FAILURES = (0xA700, 0xA7FF), (0xA900, 0xA9FF), (0xC000, 0xCFFF)


def _is_failure(status: int) -> bool:
    return any(low <= status <= high for low, high in FAILURES)


def _raw_file(tmp_path: Path, name: str, dataset: bytes, transfer_syntax: str) -> Path:
    """A PS3.10 file with valid meta and ``dataset`` as its (arbitrary) data set bytes."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CT_IMAGE
    meta.MediaStorageSOPInstanceUID = "1.2.826.0.1.3680043.8.498.99.1"
    meta.TransferSyntaxUID = transfer_syntax
    out = io.BytesIO()
    out.write(b"\x00" * 128 + b"DICM")
    write_file_meta_info(out, meta)
    path = tmp_path / name
    path.write_bytes(out.getvalue() + dataset)
    return path


def test_malformed_data_sets_fail_and_the_association_goes_on(
        isengard_server, dicom_factory, tmp_path, monkeypatch):
    # Send files as they are, without decoding them (pynetdicom >= 2.1).
    monkeypatch.setattr(pynetdicom._config, "STORE_SEND_CHUNKED_DATASET", True)
    s = isengard_server
    no_study = dicom_factory.dataset()
    del no_study.StudyInstanceUID
    no_sop_instance = dicom_factory.dataset()
    del no_sop_instance.SOPInstanceUID
    malformed = {
        "no StudyInstanceUID": tmp_path / "no-study.dcm",
        "no SOPInstanceUID": tmp_path / "no-sop-instance.dcm",
        "not a data set": _raw_file(tmp_path, "garbage.dcm",
                                    b"\x08\x00\x16\x00UI\xff\xff garbage", EXPLICIT_LE),
        "not a deflate stream": _raw_file(tmp_path, "not-deflated.dcm",
                                          b"not a deflate stream" * 8, DEFLATED),
    }
    malformed["no StudyInstanceUID"].write_bytes(dicom_factory.encode(no_study))
    malformed["no SOPInstanceUID"].write_bytes(dicom_factory.encode(no_sop_instance))
    valid = dicom_factory.dataset()
    valid_path = tmp_path / "valid.dcm"
    valid_path.write_bytes(dicom_factory.encode(valid))

    ae = AE(ae_title="MALFORMED")
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = 30
    ae.add_requested_context(CT_IMAGE, [EXPLICIT_LE])
    ae.add_requested_context(CT_IMAGE, [DEFLATED])
    assoc = ae.associate("127.0.0.1", s.dicom_port, ae_title=s.aet)
    assert assoc.is_established
    try:
        for what, path in malformed.items():
            answer = assoc.send_c_store(path)
            # Not a storage problem on our side: "Error: Cannot understand" (Cxxx).
            assert 0xC000 <= answer.Status <= 0xCFFF, (what, hex(answer.Status))
            assert answer.ErrorComment  # says why
            assert assoc.is_established, what
        assert assoc.send_c_store(valid_path).Status == 0x0000
    finally:
        assoc.release()

    assert s.get("/system").status_code == 200
    assert s.get("/statistics").json()["CountInstances"] == 1
    assert instance_id_of(s, valid.SOPInstanceUID) is not None
    assert len(storage_files(s.data_dir)) == 1


class VetoPatient:
    """Refuses the instances of one patient."""

    @hookimpl
    def filter_incoming_instance(self, instance: IncomingInstance) -> str | None:
        if instance.tags.get("PatientID") == "VETOED":
            return "this patient is not wanted here"
        return None


def test_vetoed_instance_fails_and_leaves_nothing(isengard_factory, dicom_peer,
                                                  dicom_factory, caplog):
    s = isengard_factory(config={"plugins": {"veto": {}}}, plugins=[("veto", VetoPatient())])
    vetoed = dicom_factory.instance(PatientID="VETOED")
    accepted = dicom_factory.instance(PatientID="WELCOME")

    statuses = dicom_peer.store(s.dicom_port, [vetoed, accepted])

    assert _is_failure(statuses[0]) and statuses[1] == 0
    assert s.get("/patients").json() != []
    assert s.post("/tools/find", json={"Level": "Patient",
                                       "Query": {"PatientID": "VETOED"}}).json() == []
    assert s.get("/statistics").json()["CountInstances"] == 1
    assert len(storage_files(s.data_dir)) == 1  # no file, no temporary file
    refusal = [r.getMessage() for r in caplog.records
               if r.name == "isengard.dicom" and "refused" in r.getMessage()]
    assert len(refusal) == 1 and "this patient is not wanted here" in refusal[0]

