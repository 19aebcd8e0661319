"""One DICOM file to another transfer syntax: the work behind the ``transcode`` hook.

- to an uncompressed syntax (explicit or implicit VR little endian, big endian,
  deflated): the pixels are decompressed (lossless, the SOP Instance UID is kept); plain
  conversions between the three uncompressed syntaxes are the kernel's, not ours;
- to a compressed syntax of :data:`~.encoders.TARGETS`: the pixels are decoded
  (:mod:`.pixels`), encoded, and a lossy encoding is recorded (:mod:`.lossy`);
- an instance without pixel data (a report, a plan) is only re-encoded with the new
  transfer syntax, as Orthanc does.
"""

from __future__ import annotations

import io

import pydicom
from pydicom.dataset import Dataset
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)

from isengard_sdk import KernelServices

from .encoders import INSTALL, TARGETS, CannotTranscode, Settings
from .lossy import mark_lossy
from .pixels import has_pixels, prepare

__all__ = ["transcode_file"]

_PLAIN = (ExplicitVRLittleEndian, ImplicitVRLittleEndian, ExplicitVRBigEndian)
NATIVE = (*_PLAIN, DeflatedExplicitVRLittleEndian)


def transcode_file(data: bytes, target: str, settings: Settings,
                   services: KernelServices) -> bytes | None:
    """``data`` (a PS3.10 file) in the transfer syntax ``target``; ``None`` when the
    target is none of this plugin's (left to the kernel or to another codec).

    Raises :class:`CannotTranscode` naming the instance and the reason when the target
    is ours but this instance cannot be put in it.
    """
    if target not in NATIVE and target not in TARGETS:
        return None
    ds = pydicom.dcmread(io.BytesIO(data))
    source = UID(ds.file_meta.get("TransferSyntaxUID") or ImplicitVRLittleEndian)
    if source == target:
        return data
    if source == ExplicitVRBigEndian and "PixelData" in ds:
        # pydicom does not swap the bytes of binary values: the kernel does.
        little = services.transcode(data, ExplicitVRLittleEndian)
        if little is None:
            return None
        return transcode_file(little, target, settings, services)
    try:
        if target in NATIVE:
            return _to_native(ds, source, UID(target), services)
        return _to_compressed(ds, UID(target), settings)
    except CannotTranscode as exc:
        raise CannotTranscode(f"SOP instance {ds.get('SOPInstanceUID', '?')} "
                              f"({source.name}) cannot be transcoded to "
                              f"{UID(target).name}: {exc}") from exc


def _to_native(ds: Dataset, source: UID, target: UID, services: KernelServices
               ) -> bytes | None:
    if "PixelData" in ds and source.is_compressed:
        try:
            ds.decompress(as_rgb=True, generate_instance_uid=False)
        except (NotImplementedError, RuntimeError, ValueError, AttributeError) as exc:
            raise CannotTranscode(f"its pixel data cannot be decoded: {exc}; the "
                                  f"decoders come with {INSTALL}") from exc
    elif source in _PLAIN and target in _PLAIN:
        return None  # the kernel converts between these
    if target == ExplicitVRBigEndian:  # the kernel swaps the bytes of the pixels
        return services.transcode(_write(ds, ExplicitVRLittleEndian), target)
    return _write(ds, target)


def _to_compressed(ds: Dataset, target: UID, settings: Settings) -> bytes:
    spec = TARGETS[target]
    if not has_pixels(ds):
        return _write(ds, target)
    pixels = prepare(ds, spec)
    spec.encode(ds, pixels, settings)
    if spec.method is not None:
        ratio = pixels.nbytes / max(len(ds.PixelData), 1)
        mark_lossy(ds, method=spec.method, ratio=ratio,
                   description=spec.describe(settings) if spec.describe else target.name)
    return _write(ds, target)


def _write(ds: Dataset, target: UID) -> bytes:
    ds.file_meta.TransferSyntaxUID = target
    out = io.BytesIO()
    # The encoding (implicit or explicit VR, endianness, deflate) follows the syntax.
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()
