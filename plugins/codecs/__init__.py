"""Transcodes DICOM files between transfer syntaxes: decompresses JPEG, JPEG-LS,
JPEG 2000 and RLE, and compresses to them — for ``"Transcode"`` in ``/modify``,
``/anonymize`` and archives, and for peers that accept other syntaxes than the stored one.

Targets (see :mod:`.encoders`): RLE Lossless, JPEG 2000 lossless and lossy, JPEG-LS
lossless and near-lossless, JPEG baseline (8 bits), JPEG lossless process 14 (selection
value 1 and the general syntax), and the uncompressed syntaxes. Encoders and decoders
come with ``pip install 'isengard[codecs]'`` (pylibjpeg and its plugins, pyjpegls,
imagecodecs). An instance a target cannot hold (16 bits to JPEG baseline, …) is not
converted: the hook answers ``None`` and the reason is logged.

Configuration (``plugins: codecs:``)::

    codecs:
      jpeg_quality: 90       # JPEG baseline, 1-100 (Orthanc's DicomLossyTranscodingQuality)
      jpeg_ls_near: 2        # largest error per sample of JPEG-LS near-lossless
      jpeg2000_ratio: 10.0   # compression ratio aimed at by lossy JPEG 2000
"""

from __future__ import annotations

from pydicom.uid import UID

from isengard_sdk import Context, hookimpl

from .convert import transcode_file
from .encoders import CannotTranscode, Settings

__all__ = ["Settings", "transcode"]

__version__ = "0.2.0"
ENABLED_BY_DEFAULT = True


@hookimpl
def transcode(context: Context, data: bytes, transfer_syntax_uid: str) -> bytes | None:
    """Convert ``data`` to ``transfer_syntax_uid``; ``None`` (and the reason logged)
    when this instance cannot be, or the target is not one of this plugin's."""
    settings = context.settings if isinstance(context.settings, Settings) else Settings()
    try:
        return transcode_file(data, transfer_syntax_uid, settings, context.services)
    except CannotTranscode as exc:
        context.log.warning("%s", exc)
    except Exception as exc:  # a codec library failing on this file must not fail the caller
        context.log.warning("cannot transcode a file to %s: %s: %s",
                            UID(transfer_syntax_uid).name, type(exc).__name__, exc,
                            exc_info=True)
    return None
