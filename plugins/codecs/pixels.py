"""The pixels of an instance, decoded and laid out for an encoder of :mod:`.encoders`.

Compressed sources are decoded with pydicom's decoders (pylibjpeg for JPEG, JPEG-LS,
JPEG 2000 and RLE): compressed to compressed goes through the decoded pixels. Colour
comes out as RGB (the decoders convert YCbCr, as Orthanc's DCMTK does), except from an
uncompressed YBR source going to a lossless target, whose samples are kept exactly.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydicom.dataset import Dataset
from pydicom.pixels import get_decoder
from pydicom.pixels.processing import apply_color_lut

from .encoders import INSTALL, CannotTranscode, Target

__all__ = ["PIXEL_KEYWORDS", "has_pixels", "prepare"]

PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")

# The palette of PALETTE COLOR images (PS3.3 C.7.6.3, C.7.9).
_PALETTE_KEYWORDS = tuple(
    f"{prefix}{colour}PaletteColorLookupTable{suffix}"
    for prefix, suffix in (("", "Descriptor"), ("", "Data"), ("Segmented", "Data"))
    for colour in ("Red", "Green", "Blue")) + ("PaletteColorLookupTableUID",)


def has_pixels(ds: Dataset) -> bool:
    return any(keyword in ds for keyword in PIXEL_KEYWORDS)


def prepare(ds: Dataset, target: Target) -> np.ndarray:
    """Decode the pixel data of ``ds`` and set its Image Pixel attributes (PS3.3 C.7.6.3)
    to describe the array returned: native byte order, colour-by-pixel, frames first
    when there are several."""
    if "PixelData" not in ds:
        raise CannotTranscode("its pixels are floating point (FloatPixelData), which "
                              "no compressed transfer syntax holds")
    syntax = ds.file_meta.TransferSyntaxUID
    as_rgb = syntax.is_compressed or target.lossy
    try:
        options: dict[str, Any] = {"as_rgb": as_rgb}
        arr, meta = get_decoder(syntax).as_array(ds, **options)
    except (NotImplementedError, RuntimeError, ValueError, AttributeError) as exc:
        raise CannotTranscode(f"its pixel data ({syntax.name}) cannot be decoded: {exc}; "
                              f"the decoders come with {INSTALL}") from exc
    ds.PhotometricInterpretation = str(meta["photometric_interpretation"])
    ds.SamplesPerPixel = int(meta["samples_per_pixel"])
    ds.BitsAllocated = int(meta["bits_allocated"])
    ds.BitsStored = int(meta["bits_stored"])
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = int(meta["pixel_representation"])
    if ds.SamplesPerPixel > 1:
        ds.PlanarConfiguration = 0
    if ds.PhotometricInterpretation == "PALETTE COLOR" and target.expands_palette:
        arr = _expand_palette(ds, arr)
    return arr


def _expand_palette(ds: Dataset, indices: np.ndarray) -> np.ndarray:
    """Palette colour to 8-bit RGB, as DCMTK does before a lossy JPEG encoding."""
    try:
        rgb = apply_color_lut(indices, ds)
    except (ValueError, AttributeError, KeyError) as exc:
        raise CannotTranscode(f"its colour palette cannot be applied: {exc}") from exc
    if rgb.dtype.itemsize > 1:
        # 16-bit palette entries span the full range (PS3.3 C.7.6.3.1.5); a few writers
        # put 8-bit values in them.
        rgb = rgb >> 8 if int(rgb.max(initial=0)) > 255 else rgb
        rgb = rgb.astype(np.uint8)
    for keyword in _PALETTE_KEYWORDS:
        ds.pop(keyword, None)
    ds.PhotometricInterpretation = "RGB"
    ds.SamplesPerPixel = 3
    ds.PlanarConfiguration = 0
    ds.BitsAllocated = ds.BitsStored = 8
    ds.HighBit = 7
    ds.PixelRepresentation = 0
    return rgb
