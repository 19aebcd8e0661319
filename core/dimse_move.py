"""C-MOVE as a server (PS3.4 C.4.2): the C-STORE sub-operations send the stored bytes.

pynetdicom's C-MOVE SCP hands each instance to ``send_c_store`` as a ``Dataset`` on an
association it opens itself: every file was parsed (pixels included), re-encoded and
passed PDU by PDU through the DUL thread — 143 instances/s for a CT study where Orthanc
sends 1,100. So C-MOVE requests are served here instead: pynetdicom still runs the
requester's association (negotiation, the C-MOVE-RQ, C-CANCEL, our responses), and the
sub-operations go through :func:`.store_sender.send_instances` on an association we
run ourselves. Each association gets our ``_serve_request`` in front of pynetdicom's
(installed at ``EVT_CONN_OPEN``, before it serves anything); other requests pass through.
"""

from __future__ import annotations

import logging
from io import BytesIO
from typing import TYPE_CHECKING, Any

from pydicom.dataset import Dataset
from pynetdicom.dimse_primitives import C_MOVE
from pynetdicom.dsutils import decode, encode

from .dimse_fast import send_move_pending
from .errors import BadRequest
from .store_association import PeerError
from .store_sender import send_instances
from .transfers import outgoing_instances, plugin_transcoder

if TYPE_CHECKING:
    from .dimse_qr import QueryRetrieveHandlers

__all__ = ["MoveService"]

log = logging.getLogger("isengard.dicom")

# C-MOVE statuses, PS3.4 C.4.2.1.5 (Table C.4-2), and PS3.7 C.5 for 0x0124.
SUCCESS = 0x0000
WARNING = 0xB000  # sub-operations complete, one or more failures or warnings
CANCEL = 0xFE00
NOT_AUTHORIZED = 0x0124
ALL_FAILED = 0xA702  # refused: unable to perform sub-operations
UNKNOWN_DESTINATION = 0xA801
IDENTIFIER_MISMATCH = 0xA900
UNABLE_TO_PROCESS = 0xC000


class _Move:
    """One C-MOVE request being served: where to answer, and the sub-operation counts."""

    def __init__(self, assoc: Any, request: C_MOVE, context: Any):
        self.assoc = assoc
        self.context_id = int(context.context_id)
        self.syntax = context.transfer_syntax[0]
        self.message_id = int(request.MessageID or 0)
        self.sop_class = str(request.AffectedSOPClassUID)
        self.remaining = self.completed = self.failed = self.warning = 0
        self.failed_uids: list[str] = []

    def pending(self) -> None:
        send_move_pending(self.assoc, self.context_id, self.message_id, self.sop_class,
                          (self.remaining, self.completed, self.failed, self.warning))

    def respond(self, status: int, *, counts: bool = True, failed_list: bool = False) -> None:
        """A response through pynetdicom (final ones: at most one per C-MOVE)."""
        response = C_MOVE()
        response.MessageIDBeingRespondedTo = self.message_id
        response.AffectedSOPClassUID = self.sop_class
        response.Status = status
        if counts:
            if status == CANCEL:
                response.NumberOfRemainingSuboperations = self.remaining
            response.NumberOfCompletedSuboperations = self.completed
            response.NumberOfFailedSuboperations = self.failed
            response.NumberOfWarningSuboperations = self.warning
        if failed_list:  # PS3.4 C.4.2.1.4.2 (Failed SOP Instance UID List)
            identifier = Dataset()
            identifier.FailedSOPInstanceUIDList = self.failed_uids
            encoded = encode(identifier, self.syntax.is_implicit_VR,
                             self.syntax.is_little_endian, self.syntax.is_deflated)
            response.Identifier = BytesIO(encoded or b"")
        self.assoc.dimse.send_msg(response, self.context_id)

    def finish(self) -> None:
        """The final response, from the counts (PS3.4 C.4.2.3.1)."""
        if not self.failed and not self.warning:
            self.respond(SUCCESS)
        elif self.failed and not (self.completed or self.warning):
            self.respond(ALL_FAILED, failed_list=True)
        else:
            self.respond(WARNING, failed_list=True)


class MoveService:
    """The C-MOVE SCP of one server, sharing access rules and lookups with C-FIND/C-GET."""

    def __init__(self, handlers: QueryRetrieveHandlers):
        self.handlers = handlers
        self.transcoder = plugin_transcoder(handlers.kernel)

    def install(self, event: Any) -> None:
        """``EVT_CONN_OPEN`` handler: serve this association's C-MOVE requests here."""
        assoc = event.assoc
        original = assoc._serve_request

        def serve_request(msg: Any, context_id: int) -> None:
            context = None
            if isinstance(msg, C_MOVE) and msg.is_valid_request:
                context = next((cx for cx in assoc.accepted_contexts
                                if cx.context_id == context_id), None)
            if context is None:  # not a C-MOVE request, or on an unknown context
                original(msg, context_id)
                return
            assoc.dimse.cancel_req = {}  # C-CANCELs of earlier requests
            try:
                self.serve(assoc, msg, context)
            except Exception:  # pynetdicom would abort: answer a failure instead
                log.exception("C-MOVE from %s failed", assoc.requestor.ae_title)
                if assoc.is_established:
                    _Move(assoc, msg, context).respond(UNABLE_TO_PROCESS, counts=False)
            assoc.dimse.cancel_req = {}

        assoc._serve_request = serve_request

    def serve(self, assoc: Any, request: C_MOVE, context: Any) -> None:
        move = _Move(assoc, request, context)
        caller = assoc.requestor.ae_title
        if not self.handlers.allowed(assoc, "move"):
            move.respond(NOT_AUTHORIZED, counts=False)
            return
        destination_aet = str(request.MoveDestination or "").strip()
        destination = self.handlers.modalities.by_aet(destination_aet)
        if destination is None:
            log.warning("C-MOVE from %s refused: unknown destination %r (declare it under "
                        "`modalities:`)", caller, destination_aet)
            move.respond(UNKNOWN_DESTINATION, counts=False)
            return
        try:
            syntax = move.syntax
            if request.Identifier is None:
                raise BadRequest("the C-MOVE request has no identifier")
            identifier = decode(request.Identifier, syntax.is_implicit_VR,
                                syntax.is_little_endian, syntax.is_deflated)
            rows = self.handlers.instances_of(identifier)
        except (BadRequest, ValueError, AttributeError, EOFError) as exc:
            log.warning("C-MOVE from %s refused: %s", caller, exc)
            move.respond(IDENTIFIER_MISMATCH, counts=False)
            return
        if len(rows) > 0xFFFF:  # the counts are US (PS3.7 E.1)
            log.warning("C-MOVE from %s refused: %d instances match, at most 65535 can be "
                        "moved at once", caller, len(rows))
            move.respond(UNABLE_TO_PROCESS, counts=False)
            return
        log.info("C-MOVE from %s: %d instance(s) to %s", caller, len(rows), destination.name)
        if not rows:
            move.respond(SUCCESS)
            return
        outgoing = outgoing_instances(self.handlers.kernel, rows)
        move.remaining = len(outgoing)
        settings = self.handlers.settings
        sending = send_instances(destination, outgoing, calling_aet=settings.aet,
                                 timeout=destination.timeout or settings.timeout,
                                 transcoder=self.transcoder,
                                 move_originator=(caller, move.message_id))
        try:
            for sub in sending:
                move.remaining -= 1
                category = sub.category
                if category == "Success":
                    move.completed += 1
                elif category == "Warning":
                    move.warning += 1
                else:
                    move.failed += 1
                    move.failed_uids.append(sub.sop_instance_uid)
                    log.warning("C-MOVE from %s: C-STORE of %s to %s failed: %s", caller,
                                sub.instance.public_id, destination.name, sub.error)
                if not assoc.is_established:
                    return  # the requester released or aborted: nobody to answer
                if request.MessageID in assoc.dimse.cancel_req:
                    sending.close()
                    log.info("C-MOVE from %s cancelled, %d sub-operation(s) not done",
                             caller, move.remaining)
                    move.respond(CANCEL, failed_list=True)
                    return
                if move.remaining:
                    move.pending()
        except PeerError as exc:
            done = len(outgoing) - move.remaining
            if not done:
                log.warning("C-MOVE from %s: destination %s unusable: %s", caller,
                            destination.name, exc)
                move.respond(UNKNOWN_DESTINATION, counts=False)
                return
            log.warning("C-MOVE from %s: %s; %d sub-operation(s) not done", caller, exc,
                        move.remaining)
            move.failed += move.remaining
            move.failed_uids += [i.sop_instance_uid for i in outgoing[done:]]
            move.remaining = 0
        finally:
            sending.close()
        log.info("C-MOVE from %s to %s: %d completed, %d failed, %d warning(s)", caller,
                 destination.name, move.completed, move.failed, move.warning)
        move.finish()
