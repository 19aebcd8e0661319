"""Which association requests our acceptor serves, and which it leaves to pynetdicom."""

from __future__ import annotations

import logging

import pytest
from pynetdicom.pdu_primitives import (
    A_ASSOCIATE,
    AsynchronousOperationsWindowNegotiation,
    ImplementationClassUIDNotification,
    MaximumLengthNotification,
    SCP_SCU_RoleSelectionNegotiation,
    SOPClassExtendedNegotiation,
    UserIdentityNegotiation,
)
from pynetdicom.presentation import PresentationContext

from isengard.dimse_acceptor import is_ours

CT_IMAGE = "1.2.840.10008.5.1.4.1.1.2"
VERIFICATION = "1.2.840.10008.1.1"
STUDY_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.2.1"
FAST = frozenset([CT_IMAGE, VERIFICATION])
SUPPORTED = FAST | {STUDY_ROOT_FIND}


def _request(*syntaxes: str, items: list | None = None,
             context_name: str = "1.2.840.10008.3.1.1.1") -> A_ASSOCIATE:
    primitive = A_ASSOCIATE()
    primitive.application_context_name = context_name
    primitive.calling_ae_title = "SCU"
    primitive.called_ae_title = "ISENGARD"
    contexts = []
    for i, syntax in enumerate(syntaxes):
        cx = PresentationContext()
        cx.context_id = 2 * i + 1
        cx.abstract_syntax = syntax
        cx.transfer_syntax = ["1.2.840.10008.1.2"]
        contexts.append(cx)
    primitive.presentation_context_definition_list = contexts
    length = MaximumLengthNotification()
    length.maximum_length_received = 16384
    uid = ImplementationClassUIDNotification()
    uid.implementation_class_uid = "1.2.3"
    primitive.user_information = [length, uid, *(items or [])]
    return primitive


def _role() -> SCP_SCU_RoleSelectionNegotiation:
    role = SCP_SCU_RoleSelectionNegotiation()
    role.sop_class_uid = CT_IMAGE
    role.scp_role = True
    return role


def _identity() -> UserIdentityNegotiation:
    identity = UserIdentityNegotiation()
    identity.user_identity_type = 1
    identity.primary_field = b"someone"
    return identity


def _async() -> AsynchronousOperationsWindowNegotiation:
    window = AsynchronousOperationsWindowNegotiation()
    window.maximum_number_operations_invoked = 2
    window.maximum_number_operations_performed = 2
    return window


def _extended() -> SOPClassExtendedNegotiation:
    extended = SOPClassExtendedNegotiation()
    extended.sop_class_uid = CT_IMAGE
    extended.service_class_application_information = b"\x01"
    return extended


def test_storage_and_verification_are_ours():
    assert is_ours(_request(CT_IMAGE, VERIFICATION), FAST, SUPPORTED)
    # A SOP class nobody supports is rejected alike on both paths.
    assert is_ours(_request(CT_IMAGE, "1.2.3.999"), FAST, SUPPORTED)
    # Items pynetdicom ignores without a handler bound (the answer is compared with its
    # own in tests/integration/test_dicom_acceptor.py).
    assert is_ours(_request(CT_IMAGE, items=[_identity(), _async(), _extended()]), FAST,
                   SUPPORTED)


@pytest.mark.parametrize("request_", [
    _request(CT_IMAGE, STUDY_ROOT_FIND),
    _request(CT_IMAGE, items=[_role()]),  # C-GET's storage role
    _request(CT_IMAGE, items=[_identity(), _role()]),
    _request(CT_IMAGE, context_name="1.2.3.4"),
], ids=["query", "role", "identity-and-role", "context-name"])
def test_anything_else_goes_to_pynetdicom(request_):
    assert not is_ours(request_, FAST, SUPPORTED)


def test_pynetdicom_debug_logging_sends_everything_its_way(caplog):
    caplog.set_level(logging.DEBUG, logger="pynetdicom")
    assert not is_ours(_request(CT_IMAGE), FAST, SUPPORTED)
