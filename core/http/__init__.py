"""The HTTP front-end: Orthanc's REST API on Starlette."""

from .app import build_app

__all__ = ["build_app"]
