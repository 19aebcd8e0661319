"""C-FIND answers encoded by hand are byte for byte what pynetdicom and pydicom send."""

from __future__ import annotations

from io import BytesIO

import pytest
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pynetdicom.dimse_messages import C_FIND_RSP
from pynetdicom.dimse_primitives import C_FIND
from pynetdicom.dsutils import encode

from isengard.dimse_find import encode_c_find_rsp, encode_identifier

STUDY_ROOT_FIND = "1.2.840.10008.5.1.4.1.2.2.1"


@pytest.mark.parametrize("status, identifier", [(0xFF00, True), (0x0000, False),
                                                (0xA700, False)])
@pytest.mark.parametrize("message_id", [1, 65535])
def test_c_find_rsp_same_bytes_as_pynetdicom(status, identifier, message_id):
    primitive = C_FIND()
    primitive.MessageIDBeingRespondedTo = message_id
    primitive.AffectedSOPClassUID = STUDY_ROOT_FIND
    primitive.Status = status
    if identifier:
        primitive.Identifier = BytesIO(b"\x08\x00\x52\x00\x06\x00\x00\x00STUDY ")
    message = C_FIND_RSP()
    message.primitive_to_message(primitive)
    expected = encode(message.command_set, True, True)
    assert encode_c_find_rsp(message_id, STUDY_ROOT_FIND, status,
                             identifier=identifier) == expected


def _answer() -> tuple[list, Dataset]:
    """The same answer as elements for the encoder and as a pydicom Dataset."""
    code = Dataset()
    code.CodeValue = "CT"  # even
    code.CodingSchemeDesignator = "DCM"  # odd: padded
    code_seq = DataElement(0x00081032, "SQ", Sequence([code]))
    elements = [
        (0x0020000D, "UI", "1.2.840.113619.2.1.3"),  # odd UID: NUL padding
        (0x00080005, "CS", "ISO_IR 192"),
        (0x00100010, "PN", "Müller^Jörg"),  # UTF-8, odd byte length
        (0x00080052, "CS", "STUDY"),
        (0x00100020, "LO", ""),  # returned empty (universal match, no value)
        (0x00201208, "IS", "17"),
        (0x00080061, "CS", "CT\\MR"),
        (0x00081030, "LO", "Thorax"),
        (0x00081032, "SQ", code_seq),  # copied from a stored header
    ]
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.QueryRetrieveLevel = "STUDY"
    ds.PatientName = "Müller^Jörg"
    ds.PatientID = ""
    ds.StudyDescription = "Thorax"
    ds.ProcedureCodeSequence = Sequence([code])
    ds.ModalitiesInStudy = ["CT", "MR"]
    ds.NumberOfStudyRelatedInstances = "17"
    ds.StudyInstanceUID = "1.2.840.113619.2.1.3"
    return elements, ds


@pytest.mark.parametrize("implicit", [True, False])
def test_identifier_same_bytes_as_pydicom(implicit):
    elements, ds = _answer()
    assert encode_identifier(elements, implicit=implicit) == encode(ds, implicit, True)


def test_long_vr_header_in_explicit_vr():
    elements = [(0x00081030, "UT", "x" * 3)]
    ds = Dataset()
    ds.add_new(0x00081030, "UT", "x" * 3)
    assert encode_identifier(elements, implicit=False) == encode(ds, False, True)
