"""Isengard: a lightweight DICOM server with an Orthanc-compatible REST API."""

from .version import __version__

__all__ = ["__version__"]
