"""The hooks a plugin can implement — this module *is* the contract.

Implement a hook with a function of the same name decorated with ``@hookimpl``; take
only the arguments you need. Every hook receives ``context``, the plugin's own
:class:`~isengard_sdk.context.Context`.

Naming says how a hook is called:

- ``on_*`` — notifications. Every implementation runs; results are ignored; an exception
  is logged with the plugin's name and never changes the outcome for the others.
- ``register_*`` — contributions. Results (lists) are concatenated.
- a bare noun (``storage_backend``) — a provider: the first non-``None`` answer wins.
- ``filter_*`` — vetoes: any implementation answering ``False`` (or a string, the reason)
  rejects the subject. A filter that raises rejects too (fail closed) and is logged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from .context import Context
    from .types import Change, IncomingInstance, StorageArea, StoredInstance

__all__ = ["hookimpl", "hookspec"]

PROJECT_NAME = "isengard"
hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


# ---------------------------------------------------------------------------------------
# Lifecycle
# ---------------------------------------------------------------------------------------


@hookspec
def on_startup(context: Context) -> None:
    """Called once when the server has started: the index and storage are open, the
    DICOM and HTTP listeners accept connections.

    Called in the main thread, before the server reports itself ready. Keep it short:
    start your own thread for long work. On error: logged, start-up goes on without
    this plugin's start-up work. Since 0.1.
    """


@hookspec
def on_shutdown(context: Context) -> None:
    """Called once when the server stops, after the listeners are closed and before
    the index is closed. Release your resources here.

    Called in the main thread. On error: logged, shut-down goes on. Since 0.1.
    """


# ---------------------------------------------------------------------------------------
# Contributions
# ---------------------------------------------------------------------------------------


@hookspec
def register_routes(context: Context) -> list[Any]:
    """Return Starlette routes (``Route``, ``Mount``, ``WebSocketRoute``) to add to the
    REST API. They are mounted before the kernel's own routes, so a plugin can serve
    new paths but should not shadow Orthanc's.

    Called once at start-up in the main thread. Endpoints run on the event loop:
    blocking work belongs in :func:`isengard_sdk.http.run_blocking` (Starlette's
    ``run_in_threadpool`` works too, at twice the cost per call). On error:
    logged, the plugin's routes are left out. Since 0.1.
    """
    return []


@hookspec
def register_job_types(context: Context) -> list[tuple[str, Any]]:
    """Return ``(job type, function)`` pairs: long operations that run in the jobs engine
    (``GET /jobs``, cancel, pause, resubmit, kept across restarts).

    ``function(job)`` receives a :class:`~isengard_sdk.context.JobHandle`, calls
    ``job.progress(done, total)`` as it goes and returns the job's final ``Content``
    (a JSON object). Queue jobs with ``context.services.submit_job`` or ``run_job``.
    Called once at start-up in the main thread; the functions run in job worker threads.
    On error in this hook: logged, the plugin's job types are left out; an exception in a
    job function fails that job with its message. Since 0.1.
    """
    return []


# ---------------------------------------------------------------------------------------
# Providers
# ---------------------------------------------------------------------------------------


@hookspec(firstresult=True)
def storage_backend(context: Context) -> StorageArea | None:
    """Return the storage area to use instead of the local folder tree, or ``None``.

    Called once at start-up. The first plugin answering wins. It must implement
    :class:`~isengard_sdk.types.StorageArea` (thread-safe, atomic writes). On error:
    start-up fails with the plugin's name — a storage that cannot open must not be
    replaced silently by another. Since 0.1.
    """
    return None


@hookspec(firstresult=True)
def transcode(context: Context, data: bytes, transfer_syntax_uid: str) -> bytes | None:
    """Convert a DICOM file (``data``, a complete PS3.10 file) to the transfer syntax
    ``transfer_syntax_uid``, or return ``None`` if this plugin cannot.

    Called when a peer accepts none of the transfer syntaxes an instance is stored in
    (C-STORE to a modality, C-MOVE, C-GET), in the sending thread. The first plugin
    answering wins. Conversions between uncompressed syntaxes are done by the kernel;
    codecs (decompressing JPEG, JPEG-LS, JPEG 2000, RLE …) are plugins. On error: logged,
    the instance counts as a failed sub-operation, the others are still sent. Since 0.1.
    """
    return None


@hookspec(firstresult=True)
def decode_image(context: Context, data: bytes, media_type: str) -> dict[str, Any] | None:
    """Decode an image (``media_type`` ``image/png`` or ``image/jpeg``) given to
    ``POST /tools/create-dicom`` into the attributes of an uncompressed DICOM image:
    a mapping of keywords (``Rows``, ``Columns``, ``SamplesPerPixel``,
    ``PhotometricInterpretation``, ``BitsAllocated`` …, ``PixelData`` as bytes) —
    or ``None`` if this plugin cannot.

    Called in an HTTP worker thread; the first plugin answering wins (the first-party
    rendering plugin does, with Pillow: the kernel never loads imaging libraries).
    On error: raise ``isengard_sdk.HttpError`` for a bad image (it becomes the answer);
    other exceptions are logged and answered 500. Since 0.1.
    """
    return None


# ---------------------------------------------------------------------------------------
# Ingest: every instance, whatever its origin, goes through these
# ---------------------------------------------------------------------------------------


@hookspec
def filter_incoming_instance(context: Context, instance: IncomingInstance) -> bool | str | None:
    """Decide whether to accept an incoming instance before it is stored.

    Return ``False`` (or a string giving the reason) to reject it; ``True`` or ``None``
    to accept. Called in the receiving thread (a DICOM association or an HTTP worker)
    for every instance, so keep it fast. A rejected instance is answered with a DICOM
    failure status (C-STORE) or HTTP 403 (REST), and logged with the reason. On error:
    the instance is rejected (fail closed) and the error logged. Since 0.1.
    """
    return None


@hookspec
def on_stored_instance(context: Context, instance: StoredInstance) -> None:
    """Called once for each new instance after it is durable in storage and committed
    to the index.

    Called in the change-dispatch thread, in the order instances were stored, never in
    the receiving thread: a slow plugin does not slow down ingest. Delivery resumes
    after a restart from a cursor kept in the index. On error: logged, the other plugins
    and later instances still get their calls. Since 0.1.
    """


@hookspec
def on_change(context: Context, change: Change) -> None:
    """Called for every entry of the change log (``NewInstance``, ``NewSeries``,
    ``StableStudy``, ``Deleted`` …), in order.

    Called in the change-dispatch thread with the same ordering and restart guarantees as
    :func:`on_stored_instance`. Use ``change.path`` and ``context.services`` to fetch the
    resource (it may have been deleted since). On error: logged, dispatch goes on with
    the next plugin and the next change. Since 0.1.
    """
