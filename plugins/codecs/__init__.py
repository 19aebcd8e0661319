"""Decompresses JPEG, JPEG-LS, JPEG 2000 and RLE files for peers that accept only
uncompressed transfer syntaxes (pydicom's pixel handlers; pylibjpeg for JPEG and
JPEG 2000: ``pip install 'isengard[codecs]'``)."""

from __future__ import annotations

import io
import logging

import pydicom
from pydicom.filewriter import dcmwrite
from pydicom.uid import UID

from isengard_sdk import Context, hookimpl

__version__ = "0.1.0"
ENABLED_BY_DEFAULT = True

EXPLICIT_LE = "1.2.840.10008.1.2.1"
IMPLICIT_LE = "1.2.840.10008.1.2"
BIG_ENDIAN = "1.2.840.10008.1.2.2"
log = logging.getLogger("isengard.plugins.codecs")


@hookimpl
def transcode(context: Context, data: bytes, transfer_syntax_uid: str) -> bytes | None:
    """Decompress to explicit or implicit VR little endian; other targets: not ours."""
    if transfer_syntax_uid not in (EXPLICIT_LE, IMPLICIT_LE):
        return None
    ds = pydicom.dcmread(io.BytesIO(data))
    if not ds.file_meta.TransferSyntaxUID.is_compressed:
        return None  # uncompressed conversions are the kernel's
    try:
        ds.decompress()
    except (NotImplementedError, RuntimeError, ValueError, ImportError) as exc:
        context.log.warning(
            "cannot decompress %s (%s): %s — install the decoders with "
            "pip install 'isengard[codecs]'", ds.get("SOPInstanceUID", "?"),
            ds.file_meta.TransferSyntaxUID.name, exc)
        return None
    ds.file_meta.TransferSyntaxUID = UID(transfer_syntax_uid)
    out = io.BytesIO()
    dcmwrite(out, ds, implicit_vr=transfer_syntax_uid == IMPLICIT_LE, little_endian=True,
             force_encoding=True)
    return out.getvalue()
