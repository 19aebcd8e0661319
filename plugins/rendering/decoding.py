"""From a stored DICOM file to decoded frames, as Orthanc 1.10's decoder hands them over.

A decoded frame is a numpy array in one of Orthanc's pixel formats:

- grayscale: 2-D, ``uint8`` / ``uint16`` / ``int16`` (or ``uint32`` / ``int32``), the
  *stored* values (no rescale, no window); 1-bit images become 0 / 255 like Orthanc's;
- colour: ``(rows, columns, 3)`` RGB, ``uint8`` (or ``uint16`` for 16-bit samples).
  YBR is converted to RGB and palette colour is looked up, so colour is always RGB.

Compressed transfer syntaxes go through pydicom's pixel handlers (pylibjpeg and its
plugins, or Pillow). A missing decoder or a corrupted frame raises :class:`HttpError`
(415, what Orthanc answers when it cannot decode) naming the package to install or the
frame at fault: the request fails, the server goes on.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from importlib.util import find_spec
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_color_lut
from pydicom.pixels.decoders.base import get_decoder
from pydicom.uid import UID

from isengard_sdk import HttpError

__all__ = ["DecodedFrame", "InstancePixels", "PixelInfo", "frame_out_of_range"]

log = logging.getLogger("isengard.plugins.rendering")

NOT_IMPLEMENTED = (2, "Not implemented yet")
BAD_FILE_FORMAT = (15, "Bad file format")
INSTALL_CODECS = "pip install 'isengard[codecs]'"

# The pylibjpeg plugin that decodes each family of transfer syntaxes (PS3.5 A.4).
# Pillow reads 8-bit JPEG and some JPEG 2000 too, but not 12-bit, lossless or JPEG-LS.
_CODEC_PACKAGES: tuple[tuple[tuple[str, ...], str, str], ...] = (
    (("1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.57",
      "1.2.840.10008.1.2.4.70", "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81"),
     "pylibjpeg-libjpeg", "libjpeg"),
    (("1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91", "1.2.840.10008.1.2.4.201",
      "1.2.840.10008.1.2.4.202", "1.2.840.10008.1.2.4.203"),
     "pylibjpeg-openjpeg", "openjpeg"),
)  # RLE needs nothing: pydicom decodes it itself (pylibjpeg-rle is only faster)

_PILLOW_FIRST = ("1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51")


@dataclass(frozen=True)
class PixelInfo:
    """What the renderer needs to know about an instance, besides its pixels."""

    rows: int
    columns: int
    frames: int
    photometric: str
    bits_stored: int
    rescale: tuple[float, float] | None  # (slope, intercept) when both tags are present
    window: tuple[float, float] | None  # (center, width), the first values in the file

    @property
    def inverted(self) -> bool:
        """MONOCHROME1: low values are white (PS3.3 C.7.6.3.1.2)."""
        return self.photometric == "MONOCHROME1"


@dataclass(frozen=True)
class DecodedFrame:
    pixels: np.ndarray
    info: PixelInfo

    @property
    def is_color(self) -> bool:
        return self.pixels.ndim == 3


def frame_out_of_range(instance_id: str, frame: int, frames: int) -> HttpError:
    return HttpError(404, f"instance {instance_id} has {frames} frame(s), numbered from 0: "
                          f"frame {frame} does not exist")


def _first_float(ds: Dataset, keyword: str) -> float | None:
    value: Any = ds.get(keyword)
    if value is None or value == "":
        return None
    if isinstance(value, (list, tuple, pydicom.multival.MultiValue)):
        value = value[0] if len(value) else None
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


class InstancePixels:
    """The pixel data of one stored instance (parsed once, decoded frame by frame)."""

    def __init__(self, instance_id: str, data: bytes):
        self.instance_id = instance_id
        try:
            self.ds = pydicom.dcmread(io.BytesIO(data), force=True)
        except (InvalidDicomError, ValueError, EOFError, OSError) as exc:
            raise HttpError(415, f"the file of instance {instance_id} cannot be parsed: "
                                 f"{exc}", orthanc=BAD_FILE_FORMAT) from exc
        if "PixelData" not in self.ds:
            raise HttpError(415, f"instance {instance_id} has no pixel data (7FE0,0010): "
                                 "there is no image to decode", orthanc=NOT_IMPLEMENTED)
        self.transfer_syntax = UID(str(self.ds.file_meta.get(
            "TransferSyntaxUID", "1.2.840.10008.1.2.1")))
        self.info = self._pixel_info()

    def _pixel_info(self) -> PixelInfo:
        ds = self.ds
        try:
            frames = int(ds.get("NumberOfFrames") or 1)
            rows, columns = int(ds.Rows), int(ds.Columns)
        except (AttributeError, TypeError, ValueError) as exc:
            raise HttpError(415, f"instance {self.instance_id} lacks a usable Rows, Columns "
                                 f"or NumberOfFrames: {exc}", orthanc=BAD_FILE_FORMAT) from exc
        slope = _first_float(ds, "RescaleSlope")
        intercept = _first_float(ds, "RescaleIntercept")
        center = _first_float(ds, "WindowCenter")
        width = _first_float(ds, "WindowWidth")
        return PixelInfo(
            rows=rows, columns=columns, frames=max(frames, 1),
            photometric=str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip(),
            bits_stored=int(ds.get("BitsStored") or ds.get("BitsAllocated") or 8),
            rescale=(slope, intercept) if slope is not None and intercept is not None
            else None,
            window=(center, width) if center is not None and width is not None else None)

    # -- raw frames --------------------------------------------------------------------

    def check_frame(self, frame: int) -> None:
        if not 0 <= frame < self.info.frames:
            raise frame_out_of_range(self.instance_id, frame, self.info.frames)

    def raw_frame(self, frame: int) -> tuple[bytes, str]:
        """The bytes of one frame as stored, and their MIME type (Orthanc's ``/raw``).

        Compressed: the frame's fragments joined (a JPEG, JPEG 2000 … codestream).
        Native: the frame's slice of the pixel data, little endian like Orthanc's.
        """
        self.check_frame(frame)
        if self.transfer_syntax.is_encapsulated:
            try:
                for index, data in enumerate(generate_frames(
                        self.ds.PixelData, number_of_frames=self.info.frames)):
                    if index == frame:
                        return data, _raw_mime(self.transfer_syntax)
            except (ValueError, StopIteration) as exc:
                raise HttpError(415, f"the encapsulated pixel data of instance "
                                     f"{self.instance_id} is corrupted: {exc}",
                                orthanc=BAD_FILE_FORMAT) from exc
            raise HttpError(415, f"instance {self.instance_id} announces "
                                 f"{self.info.frames} frames but holds fewer fragments",
                            orthanc=BAD_FILE_FORMAT)
        ds = self.ds
        bits = int(ds.get("BitsAllocated") or 8)
        samples = int(ds.get("SamplesPerPixel") or 1)
        pixel_count = self.info.rows * self.info.columns * samples
        if bits == 1:
            start, length = frame * pixel_count // 8, (pixel_count + 7) // 8
        else:
            length = pixel_count * bits // 8
            start = frame * length
        data = bytes(ds.PixelData[start:start + length])
        if len(data) < length:
            raise HttpError(415, f"the pixel data of instance {self.instance_id} is "
                                 f"truncated: frame {frame} is incomplete",
                            orthanc=BAD_FILE_FORMAT)
        if not self.transfer_syntax.is_little_endian and bits in (16, 32):
            data = np.frombuffer(data, dtype=f">u{bits // 8}").astype(
                f"<u{bits // 8}").tobytes()
        return data, "application/octet-stream"

    # -- decoding ----------------------------------------------------------------------

    def decode(self, frame: int) -> DecodedFrame:
        """Decode one frame into one of Orthanc's pixel formats."""
        self.check_frame(frame)
        return DecodedFrame(self._to_orthanc_format(self._decode(frame)), self.info)

    def decode_all(self) -> list[DecodedFrame]:
        """Decode every frame (``/numpy`` of a whole instance)."""
        array = self._decode(None)
        if self.info.frames == 1:  # pydicom drops the frame axis of single-frame images
            array = array[np.newaxis]
        return [DecodedFrame(self._to_orthanc_format(a), self.info) for a in array]

    def _decode(self, frame: int | None) -> np.ndarray:
        plugins = self._decoding_plugins()
        where = f"frame {frame}" if frame is not None else "the frames"
        for attempt, plugin in enumerate(plugins, start=1):
            try:
                array: np.ndarray = pydicom.pixels.pixel_array(
                    self.ds, index=frame, decoding_plugin=plugin)
                return array
            except Exception as exc:  # decoders raise anything on corrupted data
                if attempt < len(plugins):
                    continue
                missing = self._missing_package()
                if missing:
                    raise HttpError(415, f"{where} of instance {self.instance_id} cannot be "
                                         f"decoded by the installed decoders ({exc}): "
                                         f"install {missing} (pip install {missing}, or "
                                         f"{INSTALL_CODECS})",
                                    orthanc=NOT_IMPLEMENTED) from exc
                log.warning("cannot decode %s of instance %s: %s", where, self.instance_id,
                            exc)
                raise HttpError(415, f"{where} of instance {self.instance_id} cannot be "
                                     f"decoded ({self.transfer_syntax.name}): {exc}",
                                orthanc=BAD_FILE_FORMAT) from exc
        raise AssertionError("unreachable")  # the loop returns or raises

    def _decoding_plugins(self) -> tuple[str, ...]:
        """pydicom plugins to try in turn ("" = any available one).

        8-bit JPEG goes to Pillow (libjpeg-turbo) first: its upsampling and YCbCr → RGB
        conversion give exactly DCMTK's pixels, hence Orthanc's; pylibjpeg differs by
        up to 3. 12-bit JPEG, that Pillow cannot read, falls back to pylibjpeg.
        """
        if not self.transfer_syntax.is_encapsulated:
            return ("",)
        try:
            decoder = get_decoder(self.transfer_syntax)
        except NotImplementedError:
            raise HttpError(415, f"no decoder exists for the transfer syntax "
                                 f"{self.transfer_syntax.name} ({self.transfer_syntax}) of "
                                 f"instance {self.instance_id}",
                            orthanc=NOT_IMPLEMENTED) from None
        if not decoder.is_available:
            raise self._missing_decoder(self._missing_package() or "pylibjpeg")
        if (self.transfer_syntax in _PILLOW_FIRST
                and "pillow" in decoder.available_plugins
                and len(decoder.available_plugins) > 1):
            return ("pillow", "")
        return ("",)

    def _missing_package(self) -> str | None:
        """The pylibjpeg plugin for this transfer syntax, if it is not installed."""
        for syntaxes, package, module in _CODEC_PACKAGES:
            if self.transfer_syntax in syntaxes:
                if find_spec(module) is None or find_spec("pylibjpeg") is None:
                    return package
        return None

    def _missing_decoder(self, package: str) -> HttpError:
        return HttpError(415, f"instance {self.instance_id} is encoded in "
                              f"{self.transfer_syntax.name} ({self.transfer_syntax}) and no "
                              f"installed decoder can read it: install {package} "
                              f"(pip install {package}, or {INSTALL_CODECS})",
                         orthanc=NOT_IMPLEMENTED)

    def _to_orthanc_format(self, array: np.ndarray) -> np.ndarray:
        ds, info = self.ds, self.info
        if info.photometric == "PALETTE COLOR":
            try:
                array = apply_color_lut(array, ds)
            except (ValueError, AttributeError, KeyError) as exc:
                raise HttpError(415, f"the palette of instance {self.instance_id} is "
                                     f"unusable: {exc}", orthanc=BAD_FILE_FORMAT) from exc
            if array.dtype != np.uint8:
                array = _palette_to_8_bits(array, ds)
        elif array.ndim == 2 and int(ds.get("BitsAllocated") or 8) == 1:
            # Orthanc decodes 1-bit (segmentation, overlay-like) images as 0 / 255.
            array = (array != 0).astype(np.uint8) * np.uint8(255)
        if array.ndim == 3 and array.dtype not in (np.uint8, np.uint16):
            array = np.clip(array, 0, 65535).astype(np.uint16)
        return np.ascontiguousarray(array)


def _palette_to_8_bits(array: np.ndarray, ds: Dataset) -> np.ndarray:
    """A palette lookup gives 16-bit entries when the LUT holds 16-bit values (its
    descriptor's third value, PS3.3 C.7.6.3.1.5): keep the high byte, like DCMTK."""
    descriptor = ds.get("RedPaletteColorLookupTableDescriptor")
    bits = int(descriptor[2]) if descriptor is not None and len(descriptor) > 2 else 16
    if bits <= 8:
        return np.clip(array, 0, 255).astype(np.uint8)
    return (array.astype(np.uint32) >> (bits - 8)).astype(np.uint8)


def _raw_mime(transfer_syntax: UID) -> str:
    # Orthanc labels baseline JPEG and JPEG 2000 frames, everything else is binary.
    if transfer_syntax == "1.2.840.10008.1.2.4.50":
        return "image/jpeg"
    if transfer_syntax in ("1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91"):
        return "image/jp2"
    return "application/octet-stream"
