"""One server for the module (transcoding tests upload the same samples many times) and
helpers to read and compare pixels."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.pixels.processing import apply_color_lut

from isengard.config import settings_from_mapping
from isengard.server import Server
from isengard_sdk.testing import RunningServer
from tests.conftest import sample


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    tmp = tmp_path_factory.mktemp("isengard-codecs")
    settings = settings_from_mapping({
        "data_dir": str(tmp), "http": {"host": "127.0.0.1", "port": 0},
        "dicom": {"host": "127.0.0.1", "port": 0}, "storage": {"sync": False},
    }, "codecs test configuration")
    started = Server(settings, use_entry_points=True)
    started.start()
    running = RunningServer(started, started.http_url, started.dicom_port,
                            settings.dicom.aet, tmp)
    yield running
    running.stop()


class Uploaded:
    """pydicom samples uploaded once to the module's server: name → instance ID."""

    def __init__(self, server: RunningServer):
        self.server = server
        self.ids: dict[str, str] = {}

    def __call__(self, name: str) -> str:
        if name not in self.ids:
            self.ids[name] = self.server.upload(sample(name))["ID"]
        return self.ids[name]


@pytest.fixture(scope="module")
def uploaded(server: RunningServer) -> Uploaded:
    return Uploaded(server)


def read(data: bytes) -> Dataset:
    return pydicom.dcmread(io.BytesIO(data))


def pixels(ds: Dataset) -> np.ndarray[Any, Any]:
    """The image as a viewer shows it: colour as RGB, palette colour applied (8 bits)."""
    arr = ds.pixel_array
    if ds.PhotometricInterpretation == "PALETTE COLOR":
        rgb = apply_color_lut(arr, ds)
        arr = (rgb >> 8).astype(np.uint8) if rgb.max() > 255 else rgb.astype(np.uint8)
    return arr


def psnr(ours: np.ndarray[Any, Any], reference: np.ndarray[Any, Any]) -> float:
    """Peak signal-to-noise ratio in dB over the reference's dynamic range."""
    error = np.mean((ours.astype(np.float64) - reference.astype(np.float64)) ** 2)
    peak = float(reference.max()) - float(reference.min())
    return float("inf") if error == 0 else float(10 * np.log10(peak**2 / error))
