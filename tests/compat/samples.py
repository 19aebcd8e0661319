"""The files both servers receive: pydicom's samples covering the encodings and IODs a
PACS meets, plus synthetic instances spread over several patients, studies and series."""

from __future__ import annotations

from dataclasses import dataclass

from isengard_sdk.testing import DicomFactory
from tests.conftest import sample

__all__ = ["SAMPLE_FILES", "SampleFile", "sample_set", "synthetic_files"]

# (file, what it covers). Order matters: MR_small_RLE.dcm holds the same SOP instance as
# MR_small.dcm, so it is answered "AlreadyStored" with different bytes.
SAMPLE_FILES: dict[str, str] = {
    "CT_small.dcm": "explicit VR little endian, private tags",
    "MR_small.dcm": "explicit VR little endian",
    "MR_small_RLE.dcm": "same instance as MR_small, RLE: AlreadyStored",
    "ExplVR_BigEnd.dcm": "explicit VR big endian, no PatientID",
    "rtplan.dcm": "implicit VR, RT plan",
    "rtdose.dcm": "implicit VR, multi-frame RT dose",
    "image_dfl.dcm": "deflated explicit VR little endian",
    "JPEG-lossy.dcm": "JPEG baseline",
    "JPEG2000.dcm": "JPEG 2000, same series as JPEG-lossy",
    "SC_rgb_rle.dcm": "RLE, RGB",
    "SC_rgb_jpeg_dcmtk.dcm": "JPEG RGB, same series as SC_rgb_rle",
    "examples_ybr_color.dcm": "multi-frame JPEG YBR",
    "rtstruct.dcm": "no preamble nor file meta, RT structure set",
    "test-SR.dcm": "structured report (nested sequences)",
    "examples_palette.dcm": "palette colour",
    "waveform_ecg.dcm": "waveform",
    "liver_1frame.dcm": "segmentation",
}


@dataclass(frozen=True)
class SampleFile:
    name: str
    data: bytes


def synthetic_files() -> list[SampleFile]:
    """Deterministic instances: 3 patients, 4 studies, 6 series, varied values for the
    query battery (case, dates, multi-valued ImageType, PN with components)."""
    f = DicomFactory()
    files: list[SampleFile] = []

    def add(name: str, **tags: object) -> None:
        files.append(SampleFile(name, f.instance(**tags)))

    study_a, study_b, study_c, study_d = f.uid(), f.uid(), f.uid(), f.uid()
    series = [f.uid() for _ in range(6)]
    common_a = dict(PatientID="SYN-A", PatientName="Doe^John", PatientBirthDate="19800412",
                    StudyInstanceUID=study_a, StudyDate="20230115", StudyTime="083000",
                    AccessionNumber="ACC-A1", StudyDescription="Chest CT",
                    ReferringPhysicianName="House^Gregory")
    for i in range(3):
        add(f"syn-a-ct-{i + 1}", **common_a, SeriesInstanceUID=series[0], Modality="CT",
            SeriesNumber="1", InstanceNumber=str(i + 1), ImageType=["ORIGINAL", "PRIMARY",
                                                                    "AXIAL"],
            SeriesDescription="Axial 5mm", SeriesDate="20230115")
    add("syn-a-ct-derived", **common_a, SeriesInstanceUID=series[1], Modality="CT",
        SeriesNumber="2", InstanceNumber="1", ImageType=["DERIVED", "SECONDARY"],
        SeriesDescription="MPR coronal")
    common_b = dict(PatientID="SYN-A", PatientName="Doe^John", StudyInstanceUID=study_b,
                    StudyDate="20240220", StudyTime="141500", AccessionNumber="acc-a2",
                    StudyDescription="chest ct follow-up")
    add("syn-a-mr", **common_b, SeriesInstanceUID=series[2], Modality="MR",
        SeriesNumber="1", InstanceNumber="7", SeriesDescription="T1 axial",
        ImageType=["ORIGINAL", "PRIMARY"])
    add("syn-b-us", PatientID="SYN-B", PatientName="DOE^JANE^M", PatientSex="F",
        PatientBirthDate="19911231", StudyInstanceUID=study_c, StudyDate="20240301",
        StudyTime="235959", AccessionNumber="ACC-B1", StudyDescription="Abdomen US",
        SeriesInstanceUID=series[3], Modality="US", SeriesNumber="3",
        InstanceNumber="2", InstitutionName="Hôpital Saint-Éloi")
    add("syn-b-sr", PatientID="SYN-B", PatientName="DOE^JANE^M", PatientSex="F",
        StudyInstanceUID=study_c, StudyDate="20240301", SeriesInstanceUID=series[4],
        Modality="SR", SeriesNumber="4", InstanceNumber="1")
    add("syn-c-ct", PatientID="syn-c", PatientName="Smith^Anna", PatientSex="F",
        PatientBirthDate="20000101", StudyInstanceUID=study_d, StudyDate="20221231",
        StudyTime="000000", AccessionNumber="", StudyDescription="Head",
        SeriesInstanceUID=series[5], Modality="CT", SeriesNumber="10",
        InstanceNumber="3", ImagesInAcquisition="2", ImageType=["ORIGINAL", "PRIMARY"])
    add("syn-c-ct-2", PatientID="syn-c", PatientName="Smith^Anna", PatientSex="F",
        PatientBirthDate="20000101", StudyInstanceUID=study_d, StudyDate="20221231",
        StudyTime="000000", AccessionNumber="", StudyDescription="Head",
        SeriesInstanceUID=series[5], Modality="CT", SeriesNumber="10",
        InstanceNumber="1", ImagesInAcquisition="2", ImageType=["ORIGINAL", "PRIMARY"])
    return files


def sample_set() -> list[SampleFile]:
    """Every file of the suite, in upload order."""
    return [SampleFile(n, sample(n)) for n in SAMPLE_FILES] + synthetic_files()
