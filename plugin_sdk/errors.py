"""Exceptions a plugin raises to answer a REST request with an error.

::

    HttpError          an Orthanc-style JSON error answer (status, details)

Raise :class:`HttpError` from a route registered with ``register_routes``: the kernel
turns it into the JSON body Orthanc sends for errors (``HttpStatus``, ``Message``,
``Details``, ``OrthancStatus`` …), so plugins never build error bodies themselves.
"""

from __future__ import annotations

__all__ = ["HttpError"]


class HttpError(Exception):
    """Answer the current REST request with an Orthanc-style JSON error.

    - ``status``: the HTTP status (404 unknown resource, 400 bad request, 501 not
      implemented yet …);
    - ``details``: what happened and what to do next (the ``Details`` field);
    - ``orthanc``: optionally Orthanc's ``(OrthancStatus, Message)`` pair when it differs
      from the usual one for ``status`` (e.g. ``(15, "Bad file format")`` with 400).
    """

    def __init__(self, status: int, details: str, *,
                 orthanc: tuple[int, str] | None = None):
        self.status = status
        self.details = details
        self.orthanc = orthanc
        super().__init__(f"HTTP {status}: {details}")
