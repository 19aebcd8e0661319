"""The compressed transfer syntaxes the codecs plugin produces, and the library doing each.

===================================  ==========  ===========================================
target                               lossy       encoder
===================================  ==========  ===========================================
RLE Lossless (1.2.5)                 no          pydicom (or pylibjpeg-rle)
JPEG 2000 lossless (1.2.4.90)        no          pydicom + pylibjpeg-openjpeg
JPEG 2000 (1.2.4.91)                 yes         pydicom + pylibjpeg-openjpeg (``jpeg2000_ratio``)
JPEG-LS lossless (1.2.4.80)          no          pydicom + pyjpegls (CharLS)
JPEG-LS near-lossless (1.2.4.81)     yes         pydicom + pyjpegls (``jpeg_ls_near``)
JPEG baseline (1.2.4.50)             yes         Pillow (``jpeg_quality``), 8 bits only
JPEG lossless SV1 (1.2.4.70), and    no          imagecodecs (libjpeg-turbo 3, predictor 1)
JPEG lossless process 14 (1.2.4.57)
===================================  ==========  ===========================================

Each encoder receives the dataset and its decoded pixels (see :mod:`.pixels`), replaces
the pixel data by the encapsulated fragments (PS3.5 A.4) and sets the transfer syntax.
What a target cannot hold (PS3.5 8.2: bit depths, photometric interpretations) is
refused with :class:`CannotTranscode`, whose message says why.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydicom.dataset import Dataset
from pydicom.encaps import encapsulate, encapsulate_extended
from pydicom.pixels import compress, get_encoder
from pydicom.pixels.encoders.base import ENCODING_PROFILES
from pydicom.uid import (
    JPEG2000,
    UID,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)

from isengard_sdk.settings import SettingsError

__all__ = ["TARGETS", "CannotTranscode", "Settings", "Target"]

INSTALL = "pip install 'isengard[codecs]'"


class CannotTranscode(Exception):
    """This instance cannot be converted to the requested transfer syntax; the message
    says why, in words a user can act on."""


@dataclass(frozen=True)
class Settings:
    """The ``plugins.codecs`` section: the quality of lossy encodings."""

    # IJG quality of JPEG baseline, 1-100 (Orthanc's DicomLossyTranscodingQuality).
    jpeg_quality: int = 90
    # Largest error allowed per sample by JPEG-LS near-lossless (DCMTK's default, 2).
    jpeg_ls_near: int = 2
    # Compression ratio aimed at by lossy JPEG 2000 (one quality layer).
    jpeg2000_ratio: float = 10.0

    def __post_init__(self) -> None:
        if not 1 <= self.jpeg_quality <= 100:
            raise SettingsError("plugins.codecs.jpeg_quality",
                                f"{self.jpeg_quality} is out of range: give 1 to 100")
        if not 1 <= self.jpeg_ls_near <= 255:
            raise SettingsError("plugins.codecs.jpeg_ls_near",
                                f"{self.jpeg_ls_near} is out of range: give 1 to 255")
        if self.jpeg2000_ratio <= 1:
            raise SettingsError("plugins.codecs.jpeg2000_ratio",
                                f"{self.jpeg2000_ratio} is out of range: give more than 1")


Encode = Callable[[Dataset, np.ndarray, Settings], None]


@dataclass(frozen=True)
class Target:
    """A transfer syntax this plugin encodes."""

    uid: UID
    encode: Encode
    # PS3.3 C.7.6.1.1.5.2 Lossy Image Compression Method of a lossy target, else None.
    method: str | None = None
    # What the derivation was, for DerivationDescription (lossy targets).
    describe: Callable[[Settings], str] | None = None
    # Palette colour becomes RGB (a lossy code cannot keep indices into a palette).
    expands_palette: bool = False

    @property
    def lossy(self) -> bool:
        return self.method is not None


def _frames(ds: Dataset, arr: np.ndarray) -> Iterator[np.ndarray]:
    if int(ds.get("NumberOfFrames") or 1) > 1:
        yield from arr
    else:
        yield arr


def _describe_pixels(ds: Dataset) -> str:
    sign = "signed" if ds.PixelRepresentation else "unsigned"
    return (f"{ds.PhotometricInterpretation} with {ds.SamplesPerPixel} sample(s) of "
            f"{ds.BitsStored} bits stored in {ds.BitsAllocated}, {sign}")


def check_profile(ds: Dataset, uid: UID) -> None:
    """Refuse pixels the transfer syntax cannot hold (PS3.5 8.2, as pydicom tabulates)."""
    for photometric, samples, signs, allocated, stored in ENCODING_PROFILES[uid]:
        if (ds.PhotometricInterpretation == photometric and ds.SamplesPerPixel == samples
                and ds.PixelRepresentation in signs and ds.BitsAllocated in allocated
                and ds.BitsStored in stored):
            return
    raise CannotTranscode(f"{uid.name} cannot hold {_describe_pixels(ds)} (PS3.5 8.2)")


def _drop_offset_tables(ds: Dataset) -> None:
    """Those of the source's fragments (PS3.3 C.7.6.3.1.8) would describe other bytes."""
    for keyword in ("ExtendedOffsetTable", "ExtendedOffsetTableLengths"):
        ds.pop(keyword, None)


def set_fragments(ds: Dataset, frames: list[bytes], uid: UID) -> None:
    """Encapsulate one fragment per frame (PS3.5 A.4) with an offset table."""
    _drop_offset_tables(ds)
    if sum(len(f) + 8 for f in frames) > 2**32 - 1:  # too big for the basic offset table
        ds.PixelData, ds.ExtendedOffsetTable, ds.ExtendedOffsetTableLengths = (
            encapsulate_extended(frames))
    else:
        ds.PixelData = encapsulate(frames)
    element = ds["PixelData"]
    element.VR = "OB"
    element.is_undefined_length = True
    ds.file_meta.TransferSyntaxUID = uid


def _pydicom(uid: UID, options: Callable[[Settings], dict[str, Any]] | None = None
             ) -> Encode:
    """An encoder of pydicom's (``Dataset.compress`` and its plugins)."""
    def encode(ds: Dataset, arr: np.ndarray, settings: Settings) -> None:
        check_profile(ds, uid)
        encoder = get_encoder(uid)
        if not encoder.is_available:
            missing = ", ".join(encoder.missing_dependencies)
            raise CannotTranscode(f"no encoder for {uid.name} is installed ({missing}): "
                                  f"{INSTALL}")
        _drop_offset_tables(ds)
        try:
            compress(ds, uid, arr, generate_instance_uid=False,
                     **(options(settings) if options else {}))
        except (RuntimeError, ValueError) as exc:
            raise CannotTranscode(f"the encoder failed: {exc}") from exc
    return encode


def _jpeg_ls_near(ds: Dataset, arr: np.ndarray, settings: Settings) -> None:
    # JPEG-LS records no sign: an error of NEAR could turn the lowest values into the
    # highest. Orthanc (DCMTK) refuses signed samples too.
    if ds.PixelRepresentation:
        raise CannotTranscode("JPEG-LS near-lossless cannot encode signed samples "
                              "(PixelRepresentation 1); use JPEG-LS lossless")
    _pydicom(JPEGLSNearLossless, lambda s: {"jls_error": s.jpeg_ls_near})(ds, arr, settings)


def _jpeg_baseline(ds: Dataset, arr: np.ndarray, settings: Settings) -> None:
    """8-bit JPEG with Pillow; colour is YCbCr with chroma halved horizontally, which
    DICOM calls YBR_FULL_422 (PS3.5 8.2.1), as DCMTK writes it."""
    check_profile(ds, JPEGBaseline8Bit)
    from PIL import Image

    frames = []
    for frame in _frames(ds, arr):
        buffer = io.BytesIO()
        Image.fromarray(np.ascontiguousarray(frame)).save(
            buffer, "JPEG", quality=settings.jpeg_quality, subsampling="4:2:2")
        frames.append(buffer.getvalue())
    if ds.SamplesPerPixel == 3:
        ds.PhotometricInterpretation = "YBR_FULL_422"
    set_fragments(ds, frames, JPEGBaseline8Bit)


def _without_jfif(stream: bytes) -> bytes:
    """Drop a leading JFIF APP0 segment: JFIF means YCbCr, but lossless JPEG samples are
    stored as they are (RGB stays RGB)."""
    if stream[2:4] == b"\xff\xe0" and stream[6:11] == b"JFIF\x00":
        return stream[:2] + stream[4 + int.from_bytes(stream[4:6], "big"):]
    return stream


def _jpeg_lossless(uid: UID) -> Encode:
    """JPEG lossless, process 14, first-order prediction (selection value 1), through
    libjpeg-turbo 3 in imagecodecs. A stream with selection value 1 is valid for both
    1.2.840.10008.1.2.4.70 and 1.2.840.10008.1.2.4.57."""
    def encode(ds: Dataset, arr: np.ndarray, settings: Settings) -> None:
        check_profile(ds, uid)
        if str(ds.PhotometricInterpretation).startswith("YBR"):
            # DCMTK and pydicom read the samples of a lossless JPEG as RGB whatever the
            # header says: YBR samples would come back as the wrong colours.
            raise CannotTranscode(f"{uid.name} cannot hold YBR samples exactly; use RLE, "
                                  "JPEG-LS or JPEG 2000 lossless")
        bits = int(ds.BitsStored)
        if bits < 2:  # ISO 10918-1 H.1: sample precision 2 to 16
            raise CannotTranscode(f"{uid.name} needs 2 to 16 bits stored, not {bits}")
        try:
            import imagecodecs
        except ImportError as exc:
            raise CannotTranscode(f"{uid.name} needs the imagecodecs package: "
                                  f"{INSTALL}") from exc
        dtype = np.uint8 if bits <= 8 else np.uint16
        space = "RGB" if ds.SamplesPerPixel == 3 else None  # no colour transform
        frames = []
        for frame in _frames(ds, arr):
            # Signed samples are coded as their two's complement bit pattern.
            samples = np.ascontiguousarray(frame.astype(np.int64) & ((1 << bits) - 1),
                                           dtype=dtype)
            stream = imagecodecs.jpeg8_encode(samples, lossless=True, predictor=1,
                                              bitspersample=bits, colorspace=space,
                                              outcolorspace=space)
            frames.append(_without_jfif(bytes(stream)))
        set_fragments(ds, frames, uid)
    return encode


TARGETS: dict[str, Target] = {t.uid: t for t in (
    Target(RLELossless, _pydicom(RLELossless)),
    Target(JPEG2000Lossless, _pydicom(JPEG2000Lossless)),
    Target(JPEG2000, _pydicom(JPEG2000, lambda s: {"j2k_cr": [s.jpeg2000_ratio]}),
           method="ISO_15444_1", expands_palette=True,
           describe=lambda s: f"JPEG 2000 irreversible, target ratio {s.jpeg2000_ratio:g}"),
    Target(JPEGLSLossless, _pydicom(JPEGLSLossless)),
    Target(JPEGLSNearLossless, _jpeg_ls_near, method="ISO_14495_1",
           describe=lambda s: f"JPEG-LS near-lossless, NEAR={s.jpeg_ls_near}"),
    Target(JPEGBaseline8Bit, _jpeg_baseline, method="ISO_10918_1", expands_palette=True,
           describe=lambda s: f"JPEG baseline, IJG quality {s.jpeg_quality}"),
    Target(JPEGLosslessSV1, _jpeg_lossless(JPEGLosslessSV1)),
    Target(JPEGLossless, _jpeg_lossless(JPEGLossless)),
)}
