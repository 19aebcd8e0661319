"""Images given to ``POST /tools/create-dicom`` (``data:image/png|jpeg;base64,…``) as the
attributes of an uncompressed DICOM image: the kernel asks through the ``decode_image``
hook, so that it never loads imaging libraries itself."""

from __future__ import annotations

import io
from typing import Any

import numpy
from PIL import Image, UnidentifiedImageError

from isengard_sdk import HttpError


def decode_image(data: bytes) -> dict[str, Any]:
    """A PNG or JPEG as the attributes of an uncompressed image (PS3.3 C.7.6.3)."""
    try:
        img = Image.open(io.BytesIO(data))
        img.load()
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise HttpError(400, f"the image of 'Content' cannot be decoded: {exc}",
                        orthanc=(15, "Bad file format")) from exc
    bits = 8
    if img.mode in ("I;16", "I;16L", "I;16B", "I"):
        pixels = numpy.asarray(img).clip(0, 65535).astype("<u2").tobytes()
        samples, photometric, bits = 1, "MONOCHROME2", 16
    elif img.mode in ("L", "LA", "1"):
        pixels = img.convert("L").tobytes()
        samples, photometric = 1, "MONOCHROME2"
    else:
        pixels = img.convert("RGB").tobytes()
        samples, photometric = 3, "RGB"
    if len(pixels) % 2:
        pixels += b"\0"  # PS3.5 7.1.1: values have an even length
    attrs: dict[str, Any] = {"SamplesPerPixel": samples,
                             "PhotometricInterpretation": photometric}
    if samples == 3:
        attrs["PlanarConfiguration"] = 0
    attrs.update(Rows=img.height, Columns=img.width, BitsAllocated=bits, BitsStored=bits,
                 HighBit=bits - 1, PixelRepresentation=0)
    attrs["PixelData"] = pixels
    return attrs
