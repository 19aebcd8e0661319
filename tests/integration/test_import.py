"""``isengard import``: folders, nested ZIP files and DICOMDIR media, over REST or into a
data folder."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pydicom
import pydicom.data
import pytest

from isengard.importer import run_import

DICOMDIR_SAMPLES = Path(os.path.dirname(pydicom.data.get_testdata_file("CT_small.dcm"))) \
    / "dicomdirtests"


def referenced_files(dicomdir: Path) -> list[Path]:
    ds = pydicom.dcmread(dicomdir)
    return [dicomdir.parent.joinpath(*r.ReferencedFileID)
            for r in ds.DirectoryRecordSequence if "ReferencedFileID" in r]


def run(paths, **kw):
    out, err = io.StringIO(), io.StringIO()
    code = run_import([str(p) for p in paths], stdout=out, stderr=err, **kw)
    return code, out.getvalue(), err.getvalue()


def count_instances(server) -> int:
    return len(server.get("/instances").json())


@pytest.fixture
def folder(tmp_path, dicom_factory, ct_small):
    """Nested folders with 4 DICOM files and 2 junk files."""
    root = tmp_path / "export"
    (root / "a" / "b").mkdir(parents=True)
    for i, data in enumerate(dicom_factory.series(3)):
        (root / "a" / ("b" if i else "") / f"img{i}.dcm").write_bytes(data)
    (root / "CT_small").write_bytes(ct_small)  # no extension, as on many CDs
    (root / "notes.txt").write_text("not DICOM")
    (root / "a" / "b" / "Thumbs.db").write_bytes(b"\0" * 64)
    return root


def test_folder_over_rest_reports_junk_per_file(isengard_server, folder):
    code, out, err = run([folder], url=isengard_server.url)
    assert code == 1  # something was rejected
    assert "imported: 4" in out and "already stored: 0" in out and "rejected: 2" in out
    assert f"{folder / 'notes.txt'}: HTTP 400" in out
    assert f"{folder / 'a' / 'b' / 'Thumbs.db'}: HTTP 400" in out
    assert "6/6" in err  # the progress bar reached the end
    assert count_instances(isengard_server) == 4

    code, out, _ = run([folder / "a"], url=isengard_server.url)
    assert "imported: 0" in out and "already stored: 3" in out and "rejected: 1" in out


def test_folder_into_data_dir(isengard_factory, folder, tmp_path):
    data = tmp_path / "data"
    code, out, _ = run([folder / "a" / "b" / "img1.dcm", folder / "CT_small"],
                       data_dir=str(data))
    assert code == 0, out
    assert "imported: 2" in out and "rejected: 0" in out
    server = isengard_factory(data_dir=data)
    assert count_instances(server) == 2
    origin = server.get(f"/instances/{server.get('/instances').json()[0]}"
                        "/metadata/Origin")
    assert origin.text == "Import"


def test_nested_zip(isengard_server, dicom_factory, tmp_path):
    inner = io.BytesIO()
    with zipfile.ZipFile(inner, "w") as z:
        for i, data in enumerate(dicom_factory.series(2)):
            z.writestr(f"series/IM{i}", data)
        z.writestr("readme.txt", "hello")
    outer = tmp_path / "transfer.zip"
    with zipfile.ZipFile(outer, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("top.dcm", dicom_factory.instance())
        z.writestr("folder/", "")
        z.writestr("folder/inner.zip", inner.getvalue())
    code, out, _ = run([outer], url=isengard_server.url)
    assert code == 1
    assert "imported: 3" in out and "rejected: 1" in out
    assert f"{outer}:folder/inner.zip:readme.txt: HTTP 400" in out
    assert count_instances(isengard_server) == 3


def test_archive_of_a_server_imports_back(isengard_factory, dicom_factory, tmp_path):
    """A ZIP or media made by the archive plugin goes back in whole."""
    source = isengard_factory()
    for data in dicom_factory.series(3):
        answer = source.upload(data)
    media = tmp_path / "media.zip"
    media.write_bytes(source.get(f"/studies/{answer['ParentStudy']}/media").content)
    target = isengard_factory()
    code, out, _ = run([media], url=target.url)
    assert code == 0, out
    assert "imported: 3" in out  # the DICOMDIR entry is not sent as an instance


def test_dicomdir_media_into_data_dir(isengard_factory, tmp_path):
    expected = referenced_files(DICOMDIR_SAMPLES / "DICOMDIR") + \
        referenced_files(DICOMDIR_SAMPLES / "TINY_ALPHA" / "DICOMDIR")
    data = tmp_path / "data"
    code, out, err = run([DICOMDIR_SAMPLES], data_dir=str(data))
    assert code == 0, out + err
    assert f"imported: {len(expected)}" in out
    # The other DICOMDIR variants and the README beside the media are not listed by it.
    assert "skipped (beside a DICOMDIR that does not list them):" in out
    server = isengard_factory(data_dir=data)
    uids = {str(pydicom.dcmread(p, stop_before_pixels=True).SOPInstanceUID)
            for p in expected}
    assert count_instances(server) == len(uids)


def test_dicomdir_over_rest_reports_missing_files(isengard_server, tmp_path):
    media = tmp_path / "cd"
    shutil.copytree(DICOMDIR_SAMPLES / "98892001", media / "98892001")
    shutil.copy(DICOMDIR_SAMPLES / "DICOMDIR", media / "DICOMDIR")
    missing = [p for p in referenced_files(media / "DICOMDIR") if not p.exists()]
    present = [p for p in referenced_files(media / "DICOMDIR") if p.exists()]
    assert missing and present
    code, out, _ = run([media], url=isengard_server.url)
    assert code == 1
    assert f"imported: {len(present)}" in out
    assert f"rejected: {len(missing)}" in out
    assert f"{missing[0]}: referenced by {media / 'DICOMDIR'} but missing" in out


def test_dicomdir_given_directly_and_lower_case_names(isengard_server, tmp_path):
    media = tmp_path / "cd"
    referenced = referenced_files(DICOMDIR_SAMPLES / "DICOMDIR")
    for folder in {p.relative_to(DICOMDIR_SAMPLES).parts[0] for p in referenced}:
        shutil.copytree(DICOMDIR_SAMPLES / folder, media / folder)
    shutil.copy(DICOMDIR_SAMPLES / "DICOMDIR", media / "DICOMDIR")
    # The CD was copied by a system that lower-cased the names.
    for path in sorted(media.rglob("*"), key=lambda p: -len(p.parts)):
        if path.name != "DICOMDIR":
            path.rename(path.with_name(path.name.lower()))
    code, out, _ = run([media / "DICOMDIR"], url=isengard_server.url)
    assert code == 0, out
    assert f"imported: {len(referenced)}" in out


def test_folder_of_a_media_without_its_dicomdir(isengard_server, tmp_path):
    shutil.copytree(DICOMDIR_SAMPLES / "77654033", tmp_path / "77654033")
    files = [p for p in (tmp_path / "77654033").rglob("*") if p.is_file()]
    code, out, _ = run([tmp_path / "77654033"], url=isengard_server.url)
    assert code == 0, out
    assert f"imported: {len(files)}" in out


def test_missing_path_and_unreachable_server(tmp_path):
    code, out, _ = run([tmp_path / "nothing"], url="http://127.0.0.1:9")
    assert code == 2  # the destination cannot be used at all
    code, out, err = run([tmp_path / "nothing"], data_dir=str(tmp_path / "d"))
    assert code == 1
    assert "no such file or folder" in out


def test_command_line(isengard_server, folder):
    r = subprocess.run([sys.executable, "-m", "isengard", "import", str(folder / "a"),
                        "--url", isengard_server.url], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 1, r.stdout + r.stderr  # Thumbs.db was rejected
    assert "imported: 3" in r.stdout
    assert "Thumbs.db: HTTP 400: not a DICOM file" in r.stdout
    assert "4/4" in r.stderr
