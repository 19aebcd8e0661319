"""The hand-encoded C-STORE response is byte for byte what pynetdicom would send."""

from __future__ import annotations

import pytest
from pynetdicom.dimse_messages import C_STORE_RSP
from pynetdicom.dimse_primitives import C_STORE
from pynetdicom.dsutils import encode

from isengard.dimse_fast import encode_c_store_rsp


@pytest.mark.parametrize("sop_class, sop_instance, status, message_id", [
    ("1.2.840.10008.5.1.4.1.1.2", "1.2.3.4.5.6", 0x0000, 1),
    ("1.2.840.10008.5.1.4.1.1.4", "1.2.3.4.5", 0xA700, 65535),  # odd length: padded
    ("1.2.840.10008.5.1.4.1.1.7", "9" * 64, 0xC000, 42),
])
def test_same_bytes_as_pynetdicom(sop_class, sop_instance, status, message_id):
    primitive = C_STORE()
    primitive.MessageIDBeingRespondedTo = message_id
    primitive.AffectedSOPClassUID = sop_class
    primitive.AffectedSOPInstanceUID = sop_instance
    primitive.Status = status
    message = C_STORE_RSP()
    message.primitive_to_message(primitive)
    expected = encode(message.command_set, True, True)
    assert encode_c_store_rsp(message_id, sop_class, sop_instance, status) == expected
