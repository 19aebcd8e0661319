"""The remembered UID checks answer as pynetdicom's own ``set_uid`` does."""

from __future__ import annotations

import logging

import pynetdicom.pdu_items
import pynetdicom.presentation
import pynetdicom.utils
import pytest
from pydicom.uid import UID
from pynetdicom.pdu import A_ASSOCIATE_RQ

from isengard import uid_cache
from isengard.store_association import _associate_rq

CT = "1.2.840.10008.5.1.4.1.1.2"


@pytest.fixture(autouse=True)
def _installed() -> None:
    uid_cache.install()


def test_installed_where_pynetdicom_imported_it() -> None:
    assert pynetdicom.utils.set_uid is uid_cache.set_uid
    assert pynetdicom.pdu_items.set_uid is uid_cache.set_uid
    assert pynetdicom.presentation.set_uid is uid_cache.set_uid


@pytest.mark.parametrize("value", [CT, CT.encode(), UID(CT), f" {CT} "])
def test_same_answer_as_pynetdicom(value: str | bytes) -> None:
    expected = uid_cache._original(value, "test")
    for _ in range(2):  # computed, then remembered
        got = uid_cache.set_uid(value, "test")
        assert isinstance(got, UID)
        assert got == expected == CT


def test_invalid_uid_raises_every_time() -> None:
    for _ in range(2):
        with pytest.raises(ValueError, match="Invalid 'abstract_syntax'"):
            uid_cache.set_uid("1.2." + "3" * 70, "abstract_syntax")
    assert "1.2." + "3" * 70 not in uid_cache._checked


def test_non_conformant_uid_warns_every_time(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="pynetdicom")
    for _ in range(2):
        assert uid_cache.set_uid("1.02.3", "transfer_syntax") == "1.02.3"
    assert sum("Non-conformant" in r.getMessage() for r in caplog.records) == 2


def test_empty_and_none_keep_their_rules() -> None:
    assert uid_cache.set_uid(None, "x") is None
    with pytest.raises(ValueError, match="must not be an empty"):
        uid_cache.set_uid("", "x", allow_empty=False)
    with pytest.raises(TypeError):
        uid_cache.set_uid(None, "x", allow_none=False)
    with pytest.raises(TypeError):
        uid_cache.set_uid(12, "x")  # type: ignore[arg-type]


def test_association_request_decodes_the_same() -> None:
    encoded = _associate_rq("SCU", "ISENGARD",
                            [(CT, ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2"])])
    for _ in range(2):
        decoded = A_ASSOCIATE_RQ()
        decoded.decode(encoded)
        again = decoded.to_primitive()
        assert again.application_context_name == "1.2.840.10008.3.1.1.1"
        [got] = again.presentation_context_definition_list
        assert got.abstract_syntax == CT
        assert got.transfer_syntax == ["1.2.840.10008.1.2.1", "1.2.840.10008.1.2"]
        assert decoded.encode() == encoded
