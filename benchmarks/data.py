"""Deterministic synthetic DICOM sets for the benchmarks (pydicom + numpy).

Every byte depends only on the parameters: pixel values come from numpy generators
seeded with ``(SEED, set, index)``, UIDs are derived from :data:`UID_ROOT`. Files are
written once under ``benchmarks/.data/`` (git-ignored) and reused while their parameters
do not change (a ``manifest.json`` written last marks a complete set).

Each set is split into :data:`PARTS` sub-folders ``part0`` … so that N parallel senders
can each take whole folders.
"""

from __future__ import annotations

import json
import multiprocessing
import shutil
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import UID, CTImageStorage, ExplicitVRLittleEndian

__all__ = ["DATA_DIR", "PARTS", "DicomSet", "QuerySpec", "ct_series", "query_set",
           "small_set"]

DATA_DIR = Path(__file__).resolve().parent / ".data"
PARTS = 4
SEED = 20261122
# A root under the "2.25" UUID arc would be longer than needed; this private-looking root
# keeps UIDs short (< 64 characters) and is only ever used for synthetic data.
UID_ROOT = "1.2.826.0.1.3680043.10.1142.7."
GENERATOR_VERSION = 1  # bump when the content of generated files changes

_FAMILIES = ["SMITH", "JONES", "TAYLOR", "BROWN", "WILLIAMS", "WILSON", "JOHNSON", "DAVIES",
             "ROBINSON", "WRIGHT", "THOMPSON", "EVANS", "WALKER", "WHITE", "ROBERTS",
             "GREEN", "HALL", "WOOD", "JACKSON", "CLARKE", "MARTIN", "DUBOIS", "LAMBERT",
             "PEETERS", "JANSSENS", "MAES", "JACOBS", "MERTENS", "WILLEMS", "CLAES",
             "GOOSSENS", "WOUTERS", "SMETS", "MULLER", "SCHMIDT", "SCHNEIDER", "FISCHER",
             "WEBER", "MEYER", "WAGNER", "BECKER", "SCHULZ", "HOFFMANN", "ROSSI", "RUSSO",
             "FERRARI", "ESPOSITO", "BIANCHI", "ROMANO", "COLOMBO"]
_GIVEN = ["JOHN", "MARY", "PETER", "ANNA", "LUC", "MARIE", "HANS", "SOFIA", "PAUL", "EMMA",
          "MARC", "JULIE", "KARL", "LAURA", "TOM", "SARAH", "JAN", "LISA", "ELIO", "NINA"]


@dataclass(frozen=True)
class DicomSet:
    """A generated set: its folder, its parts, its files."""

    name: str
    root: Path
    files: tuple[Path, ...]
    total_bytes: int

    @property
    def parts(self) -> list[Path]:
        return [self.root / f"part{i}" for i in range(PARTS)]

    def subset(self, count: int) -> DicomSet:
        """The first ``count`` files (same order on every run)."""
        files = self.files[:count]
        return DicomSet(f"{self.name}[:{count}]", self.root, files,
                        sum(f.stat().st_size for f in files))


@dataclass(frozen=True)
class QuerySpec:
    """The query set plus the values queried and how many studies each must match."""

    dicom: DicomSet
    studies: int
    patient_ids: list[tuple[str, int]]  # (PatientID, expected study count)
    name_patterns: list[tuple[str, int]]  # (PatientName wildcard, expected count)
    date_ranges: list[tuple[str, int]]  # ("YYYYMMDD-YYYYMMDD", expected count)


# -- writing one file ---------------------------------------------------------------------

def _uid(*parts: int | str) -> str:
    uid = UID_ROOT + ".".join(str(p) for p in parts)
    if len(uid) > 64:
        raise ValueError(f"generated UID too long: {uid}")
    return uid


def _image(study: dict[str, Any], series_uid: str, sop_uid: str, number: int,
           pixels: np.ndarray) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = CTImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = UID(sop_uid)
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = sop_uid
    ds.StudyDate = study["date"]
    ds.SeriesDate = study["date"]
    ds.StudyTime = "101500"
    ds.AccessionNumber = study["accession"]
    ds.Modality = "CT"
    ds.Manufacturer = "Isengard benchmarks"
    ds.ReferringPhysicianName = "REFERRER^A"
    ds.StudyDescription = study["description"]
    ds.SeriesDescription = "Synthetic axial"
    ds.PatientName = study["patient_name"]
    ds.PatientID = study["patient_id"]
    ds.PatientBirthDate = study["birth_date"]
    ds.PatientSex = study["sex"]
    ds.SliceThickness = "1.0"
    ds.StudyInstanceUID = study["uid"]
    ds.SeriesInstanceUID = series_uid
    ds.StudyID = study["study_id"]
    ds.SeriesNumber = 1
    ds.InstanceNumber = number
    ds.ImagePositionPatient = ["-250.0", "-250.0", f"{-number:.1f}"]
    ds.ImageOrientationPatient = ["1", "0", "0", "0", "1", "0"]
    ds.FrameOfReferenceUID = study["uid"] + ".9"
    ds.SliceLocation = f"{-number:.1f}"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = pixels.shape
    ds.PixelSpacing = ["0.9765625", "0.9765625"]
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.WindowCenter = "40"
    ds.WindowWidth = "400"
    ds.RescaleIntercept = "-1024"
    ds.RescaleSlope = "1"
    ds.PixelData = pixels.astype("<u2").tobytes()
    return ds


def _pixels(set_id: int, index: int, size: int) -> np.ndarray:
    """A disc phantom plus seeded noise: not compressible to nothing, fully repeatable."""
    rng = np.random.default_rng([SEED, set_id, index])
    y, x = np.ogrid[:size, :size]
    centre = size / 2
    disc = ((x - centre) ** 2 + (y - centre) ** 2) < (0.4 * size) ** 2
    noise = rng.integers(0, 64, size=(size, size), dtype=np.uint16)
    return np.where(disc, 1000, 24).astype(np.uint16) + noise


def _write(path: Path, ds: Dataset) -> None:
    ds.save_as(path, enforce_file_format=True)


# -- the sets ---------------------------------------------------------------------------

def _prepare(name: str, params: dict[str, Any]) -> tuple[Path, dict[str, Any] | None]:
    root = DATA_DIR / name
    manifest = root / "manifest.json"
    wanted = {"generator": GENERATOR_VERSION, **params}
    if manifest.exists():
        data = json.loads(manifest.read_text())
        if data.get("params") == wanted:
            return root, data
    if root.exists():
        shutil.rmtree(root)
    for i in range(PARTS):
        (root / f"part{i}").mkdir(parents=True)
    return root, None


def _finish(name: str, root: Path, params: dict[str, Any], files: list[Path],
            extra: dict[str, Any] | None = None) -> dict[str, Any]:
    data = {"params": {"generator": GENERATOR_VERSION, **params},
            "files": [str(f.relative_to(root)) for f in files],
            "total_bytes": sum(f.stat().st_size for f in files), **(extra or {})}
    (root / "manifest.json").write_text(json.dumps(data))
    return data


def _load(name: str, root: Path, data: dict[str, Any]) -> DicomSet:
    return DicomSet(name, root, tuple(root / f for f in data["files"]), data["total_bytes"])


def _part_path(root: Path, index: int, count: int) -> Path:
    part = min(PARTS - 1, index * PARTS // count)
    return root / f"part{part}" / f"{index:06d}.dcm"


def _single_series(set_id: int, name: str, count: int, size: int, log: Any) -> DicomSet:
    params = {"count": count, "size": size}
    root, data = _prepare(name, params)
    if data is not None:
        return _load(name, root, data)
    log(f"generating {name}: {count} instances of {size}×{size} in {root}")
    study = {"uid": _uid(set_id, 1), "date": "20240115", "accession": f"ACC{set_id:04d}",
             "description": f"Benchmark set {name}", "patient_name": f"BENCH^{name.upper()}",
             "patient_id": f"BENCH-{name}", "birth_date": "19700101", "sex": "O",
             "study_id": "1"}
    series_uid = _uid(set_id, 1, 1)
    files = []
    for i in range(count):
        path = _part_path(root, i, count)
        _write(path, _image(study, series_uid, _uid(set_id, 1, 1, i + 1), i + 1,
                            _pixels(set_id, i, size)))
        files.append(path)
    return _load(name, root, _finish(name, root, params, files))


def ct_series(slices: int, log: Any = print) -> DicomSet:
    """One CT series of ``slices`` 512×512 16-bit slices (~0.5 MB each)."""
    return _single_series(1, f"ct-{slices}", slices, 512, log)


def small_set(count: int, log: Any = print) -> DicomSet:
    """``count`` 64×64 16-bit instances (~9 KB each) in one series."""
    return _single_series(2, f"small-{count}", count, 64, log)


def warm_up_set(count: int, log: Any = print) -> DicomSet:
    """``count`` 64×64 instances of another patient, sent before a measured send (their
    UIDs differ from every other set's)."""
    return _single_series(4, f"warm-up-{count}", count, 64, log)


def _query_studies(studies: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng([SEED, 3])
    patients = max(1, studies // 4)
    base = np.datetime64("2015-01-01")
    out = []
    for s in range(studies):
        p = int(rng.integers(0, patients))
        prng = np.random.default_rng([SEED, 3, p])
        family = _FAMILIES[int(prng.integers(0, len(_FAMILIES)))]
        given = _GIVEN[int(prng.integers(0, len(_GIVEN)))]
        birth = base - np.timedelta64(int(prng.integers(20 * 365, 90 * 365)), "D")
        date = base + np.timedelta64(int(rng.integers(0, 3650)), "D")
        out.append({"uid": _uid(3, s + 1), "date": str(date).replace("-", ""),
                    "accession": f"Q{s + 1:07d}", "description": "Benchmark query set",
                    "patient_name": f"{family}^{given}", "patient_id": f"QP{p:07d}",
                    "birth_date": str(birth).replace("-", ""), "sex": "MF"[p % 2],
                    "study_id": str(s + 1)})
    return out


def _write_query_chunk(args: tuple[str, list[tuple[int, dict[str, Any]]], int, int]) -> None:
    root, chunk, per_study, total = args
    for s, study in chunk:
        series_uid = study["uid"] + ".1"
        for i in range(per_study):
            index = s * per_study + i
            path = _part_path(Path(root), index, total)
            _write(path, _image(study, series_uid, f"{series_uid}.{i + 1}", i + 1,
                                _pixels(3, i, 16)))


def _quiet_worker() -> None:
    # The pool ends its workers with SIGTERM: the harness's handler must not run there.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def query_set(studies: int, per_study: int, queries: int, log: Any = print) -> QuerySpec:
    """``studies`` studies of ``per_study`` tiny instances (16×16), ~4 studies per patient,
    dates over 2015-2024, plus ``queries`` values of each query kind with their expected
    number of matching studies."""
    name = f"query-{studies}-{per_study}"
    params = {"studies": studies, "per_study": per_study}
    root, data = _prepare(name, params)
    table = _query_studies(studies)
    if data is None:
        log(f"generating {name}: {studies} studies × {per_study} instances in {root}")
        total = studies * per_study
        jobs = [(str(root), list(enumerate(table))[i::8], per_study, total) for i in range(8)]
        context = multiprocessing.get_context("fork")
        with context.Pool(min(4, multiprocessing.cpu_count()), _quiet_worker) as pool:
            pool.map(_write_query_chunk, jobs)
        files = [_part_path(root, i, total) for i in range(total)]
        data = _finish(name, root, params, files)
    return QuerySpec(_load(name, root, data), studies, *_query_values(table, queries))


def _query_values(table: list[dict[str, Any]], n: int
                  ) -> tuple[list[tuple[str, int]], list[tuple[str, int]], list[tuple[str, int]]]:
    ids = sorted({s["patient_id"] for s in table})
    chosen_ids = [ids[(i * len(ids)) // n] for i in range(n)]
    patient_ids = [(p, sum(s["patient_id"] == p for s in table)) for p in chosen_ids]
    # Prefix wildcards on the family name ("ROSSI^*" style, but shortened: "ROS*").
    families = sorted({s["patient_name"].split("^")[0] for s in table})
    patterns = [families[(i * 7) % len(families)][:3] + "*" for i in range(n)]
    name_patterns = [(p, sum(s["patient_name"].startswith(p[:-1]) for s in table))
                     for p in patterns]
    ranges = []
    for i in range(n):
        year = 2015 + (i % 10)
        month = 1 + (i * 5) % 12
        low, high = f"{year}{month:02d}01", f"{year}{month:02d}28"
        ranges.append((f"{low}-{high}", sum(low <= s["date"] <= high for s in table)))
    return patient_ids, name_patterns, ranges
