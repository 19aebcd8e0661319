"""The modification engine on datasets, without a server."""

from __future__ import annotations

import io
import json

import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence

from isengard_plugins.anonymizer.apply import UidMapper, modify_file
from isengard_plugins.anonymizer.profiles import PROFILES
from isengard_plugins.anonymizer.request import Modification, parse_request
from isengard_sdk import HttpError, ResourceLevel
from isengard_sdk.testing import DicomFactory


def _run(data: bytes, body: dict, *, anonymize: bool,
         level: ResourceLevel = ResourceLevel.INSTANCE, secret: str = "s") -> Dataset:
    mod, _ = parse_request(body, anonymize=anonymize, level=level, patient_uuid="NEW-PID")
    return pydicom.dcmread(io.BytesIO(modify_file(data, mod, UidMapper(secret))))


def _with_reference(factory: DicomFactory) -> tuple[Dataset, bytes]:
    ds = factory.dataset(PatientID="P1", InstitutionName="Hospital",
                         FrameOfReferenceUID="1.2.3.99")
    item = Dataset()
    item.ReferencedSOPInstanceUID = ds.SOPInstanceUID
    item.StudyInstanceUID = ds.StudyInstanceUID
    item.PatientID = "P1"
    item.InstitutionName = "Nested hospital"
    item.StudyDate = "20200101"
    item.add_new(0x00090010, "LO", "CREATOR")
    item.add_new(0x00091001, "LO", "private nested")
    ds.SourceImageSequence = Sequence([item])
    ds.add_new(0x00110010, "LO", "CREATOR")
    ds.add_new(0x00111001, "LO", "private top")
    return ds, factory.encode(ds)


def test_profiles_have_the_sizes_read_off_orthanc() -> None:
    sizes = {v: (len(p.removals), len(p.clearings), len(p.uids)) for v, p in PROFILES.items()}
    assert sizes == {"2008": (39, 0, 8), "2017c": (214, 20, 28), "2021b": (315, 85, 44)}


def test_anonymization_applies_the_profile_inside_sequences(dicom_factory: DicomFactory
                                                            ) -> None:
    original, data = _with_reference(dicom_factory)
    ds = _run(data, {}, anonymize=True)
    assert ds.PatientID == "NEW-PID" and ds.PatientName == "NEW-PID"
    assert ds.PatientIdentityRemoved == "YES"
    assert "2021b" in ds.DeidentificationMethod
    assert "InstitutionName" not in ds and ds.StudyDate == ""
    assert not [e for e in ds.iterall() if e.tag.is_private]
    item = ds.SourceImageSequence[0]
    assert "InstitutionName" not in item and item.StudyDate == ""
    # References follow the identifiers they point to.
    assert item.ReferencedSOPInstanceUID == ds.SOPInstanceUID != original.SOPInstanceUID
    assert item.StudyInstanceUID == ds.StudyInstanceUID != original.StudyInstanceUID
    assert item.PatientID == "NEW-PID"
    assert ds.FrameOfReferenceUID != "1.2.3.99"
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID


def test_modification_stays_at_the_top_level(dicom_factory: DicomFactory) -> None:
    original, data = _with_reference(dicom_factory)
    ds = _run(data, {"Remove": ["InstitutionName"], "RemovePrivateTags": True,
                     "Replace": {"StudyDescription": "New"}}, anonymize=False)
    assert "InstitutionName" not in ds and ds.StudyDescription == "New"
    assert ds.SourceImageSequence[0].InstitutionName == "Nested hospital"
    assert 0x00111001 not in ds and 0x00091001 in ds.SourceImageSequence[0]
    # An instance-level modification gives a new SOPInstanceUID only.
    assert ds.SOPInstanceUID != original.SOPInstanceUID
    assert ds.SeriesInstanceUID == original.SeriesInstanceUID
    assert ds.StudyInstanceUID == original.StudyInstanceUID


def test_same_secret_maps_the_same_uids(dicom_factory: DicomFactory) -> None:
    files = dicom_factory.series(2)
    first, second = (_run(f, {}, anonymize=True, secret="job") for f in files)
    assert first.StudyInstanceUID == second.StudyInstanceUID
    assert first.SeriesInstanceUID == second.SeriesInstanceUID
    assert first.SOPInstanceUID != second.SOPInstanceUID
    other = _run(files[0], {}, anonymize=True, secret="another job")
    assert other.StudyInstanceUID != first.StudyInstanceUID
    assert first.StudyInstanceUID.startswith("2.25.") and len(first.StudyInstanceUID) <= 64


def test_sections_apply_in_orthancs_order(dicom_factory: DicomFactory) -> None:
    data = dicom_factory.instance(Manufacturer="ACME")
    assert _run(data, {"Replace": {"Manufacturer": "X"}, "Remove": ["Manufacturer"]},
                anonymize=False).Manufacturer == "X"
    assert _run(data, {"Replace": {"Manufacturer": "X"}, "Keep": ["Manufacturer"]},
                anonymize=False).Manufacturer == "ACME"
    kept = _run(data, {"Keep": ["StudyDescription", "PatientName"]}, anonymize=True)
    assert kept.StudyDescription == "Synthetic study" and kept.PatientName == "Test^Patient"
    assert "DeidentificationMethod" not in kept  # customised: not the plain profile


def test_replacement_values_follow_the_vr(dicom_factory: DicomFactory) -> None:
    data = dicom_factory.instance()
    ds = _run(data, {"Replace": {
        "Rows": "8", "ImageType": "DERIVED\\SECONDARY", "0011,1003": "private",
        "ReferencedImageSequence": [{"ReferencedSOPInstanceUID": "1.2.3"}],
        "PatientComments": "data:application/octet-stream;base64,SGVsbG8="}},
        anonymize=False)
    assert ds.Rows == 8 and list(ds.ImageType) == ["DERIVED", "SECONDARY"]
    assert ds[0x00111003].VR == "UN"
    assert ds.ReferencedImageSequence[0].ReferencedSOPInstanceUID == "1.2.3"
    assert ds.PatientComments == "Hello"


@pytest.mark.parametrize("body,status,message", [
    ({"Replace": {"StudyInstanceUID": "1.2"}}, 400, "requires the \"Force\""),
    ({"Keep": ["SOPInstanceUID"]}, 400, "to be kept requires"),
    ({"Remove": ["SeriesInstanceUID"], "Force": True}, 400, "cannot be removed"),
    ({"Replace": {"PatientName": 1}}, 400, "Bad Parameter type"),
    ({"Replace": {"NoSuchKeyword": "x"}}, 400, "unknown DICOM tag"),
    ({"Remove": "PatientName"}, 400, "must be a list"),
    ({"DicomVersion": "1999"}, 400, "Unknown specific version"),
    ({"Keep": ["PatientID"], "Force": True}, 400, "PatientID is required"),
])
def test_bad_requests(body: dict, status: int, message: str) -> None:
    anonymize = "DicomVersion" in body or body.get("Keep") == ["PatientID"]
    with pytest.raises(HttpError) as caught:
        parse_request(body, anonymize=anonymize, level=ResourceLevel.INSTANCE,
                      patient_uuid="x")
    assert caught.value.status == status and message in caught.value.details


def test_patient_modification_needs_a_new_patient_id() -> None:
    with pytest.raises(HttpError, match="PatientID is required"):
        parse_request({"Replace": {"PatientName": "X"}}, anonymize=False,
                      level=ResourceLevel.PATIENT, patient_uuid="x")
    mod, _ = parse_request({"Replace": {"PatientID": "X"}, "Force": True}, anonymize=False,
                           level=ResourceLevel.PATIENT, patient_uuid="x")
    assert mod.replacements[0x00100020] == "X"


def test_rt_referenced_study_is_mapped_as_a_study(dicom_factory: DicomFactory) -> None:
    ds = dicom_factory.dataset()
    study = Dataset()
    study.ReferencedSOPClassUID = "1.2.840.10008.3.1.2.3.1"
    study.ReferencedSOPInstanceUID = ds.StudyInstanceUID  # RT: this one names a study
    frame = Dataset()
    frame.FrameOfReferenceUID = "1.2.3.4"
    frame.RTReferencedStudySequence = Sequence([study])
    ds.ReferencedFrameOfReferenceSequence = Sequence([frame])
    out = _run(dicom_factory.encode(ds), {}, anonymize=True)
    mapped = out.ReferencedFrameOfReferenceSequence[0].RTReferencedStudySequence[0]
    assert mapped.ReferencedSOPInstanceUID == out.StudyInstanceUID != ds.StudyInstanceUID


def test_paths_survive_the_job_parameters() -> None:
    """A job's Modification goes through JSON (and may be resumed after a restart)."""
    body = {"Replace": {"ReferencedImageSequence[*].PurposeOfReferenceCodeSequence[0]"
                        ".CodeValue": "X", "0008,1140[1].0008,1155": "1.2"},
            "Remove": ["ReferencedImageSequence[0].InstitutionName"],
            "Keep": ["(0008,2112)[0].StudyInstanceUID"]}
    mod, _ = parse_request(body, anonymize=True, level=ResourceLevel.STUDY,
                           patient_uuid="x")
    again = Modification.from_json(json.loads(json.dumps(mod.to_json())))
    assert again == mod and len(again.path_replacements) == 2
    assert str(again.path_kept[0]) == "00082112[0].0020000D"
    old_job = {k: v for k, v in mod.to_json().items() if not k.startswith("path_")}
    assert Modification.from_json(old_job).path_removals == []
