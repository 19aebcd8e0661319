"""Synthetic images for the rendering tests: deterministic (fixed seeds, UIDs from the
test root), built with :class:`isengard_sdk.testing.DicomFactory`, covering what pydicom's
bundled files do not: signed values, MONOCHROME1, 8-bit with rescale, uncompressed YBR,
multi-frame grayscale, values beyond int16."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from isengard_sdk.testing import DicomFactory

__all__ = ["SYNTHETIC", "synthetic"]


def _with_pixels(factory: DicomFactory, pixels: np.ndarray, **tags: Any) -> bytes:
    bits = pixels.dtype.itemsize * 8
    frames = pixels.shape[0] if pixels.ndim == 3 and "SamplesPerPixel" not in tags else 1
    rows, columns = pixels.shape[-2:] if tags.get("SamplesPerPixel", 1) == 1 else \
        pixels.shape[-3:-1]
    ds = factory.dataset(rows=rows, columns=columns, bits=16, **tags)
    ds.BitsAllocated = bits
    ds.BitsStored = tags.get("BitsStored", bits)
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 1 if pixels.dtype.kind == "i" else 0
    if frames > 1:
        ds.NumberOfFrames = frames
    ds.PixelData = np.ascontiguousarray(pixels).astype(pixels.dtype.newbyteorder("<")).tobytes()
    return factory.encode(ds)


def signed_ct(f: DicomFactory) -> bytes:
    rng = np.random.default_rng(11)
    pixels = rng.integers(-2000, 3000, size=(24, 32), dtype=np.int16)
    pixels[0, 0], pixels[0, 1] = -2000, 2999
    return _with_pixels(f, pixels, RescaleSlope="1", RescaleIntercept="-1024",
                        WindowCenter=["40", "400"], WindowWidth=["400", "1500"])


def monochrome1(f: DicomFactory) -> bytes:
    rng = np.random.default_rng(12)
    pixels = rng.integers(0, 4096, size=(20, 30), dtype=np.uint16)
    return _with_pixels(f, pixels, PhotometricInterpretation="MONOCHROME1", BitsStored=12,
                        Modality="CR")


def gray8_rescaled(f: DicomFactory) -> bytes:
    rng = np.random.default_rng(13)
    pixels = rng.integers(10, 250, size=(16, 16), dtype=np.uint8)
    return _with_pixels(f, pixels, RescaleSlope="2", RescaleIntercept="-100")


def wide_uint16(f: DicomFactory) -> bytes:
    pixels = np.linspace(0, 65535, 40 * 10).astype(np.uint16).reshape(10, 40)
    return _with_pixels(f, pixels)


def multiframe_gray(f: DicomFactory) -> bytes:
    pixels = np.stack([np.full((8, 12), 100 * (i + 1), dtype=np.uint16) for i in range(3)])
    pixels[:, 0, 0] = 0
    return _with_pixels(f, pixels, SOPClassUID="1.2.840.10008.5.1.4.1.1.7.3")


def ybr_full(f: DicomFactory) -> bytes:
    rng = np.random.default_rng(14)
    pixels = rng.integers(16, 240, size=(10, 14, 3), dtype=np.uint8)
    return _with_pixels(f, pixels, SamplesPerPixel=3, PhotometricInterpretation="YBR_FULL",
                        PlanarConfiguration=0, SOPClassUID="1.2.840.10008.5.1.4.1.1.7")


SYNTHETIC: dict[str, Callable[[DicomFactory], bytes]] = {
    "signed_ct": signed_ct,
    "monochrome1": monochrome1,
    "gray8_rescaled": gray8_rescaled,
    "wide_uint16": wide_uint16,
    "multiframe_gray": multiframe_gray,
    "ybr_full": ybr_full,
}


def synthetic(name: str) -> bytes:
    """The bytes of one synthetic sample: the same bytes at every call, and UIDs that
    differ from one sample to the other."""
    factory = DicomFactory()
    for _ in range(10 * list(SYNTHETIC).index(name)):
        factory.uid()
    return SYNTHETIC[name](factory)
