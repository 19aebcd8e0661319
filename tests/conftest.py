"""Shared test helpers. The fixtures themselves live in ``isengard_sdk.testing`` (loaded
as a pytest plugin through the ``pytest11`` entry point) so plugin authors get the same."""

from __future__ import annotations

from pathlib import Path

import pydicom.data
import pytest


def sample(name: str) -> bytes:
    """Bytes of one of pydicom's bundled sample files (available offline)."""
    path = pydicom.data.get_testdata_file(name)
    if path is None:
        pytest.skip(f"pydicom sample {name} is not bundled with this pydicom")
    return Path(path).read_bytes()


def dataset_bytes(data: bytes) -> bytes:
    """The dataset of a PS3.10 file: what follows the preamble and the file meta group
    (whose length is given by its first element, (0002,0000) UL, PS3.10 7.1)."""
    assert data[128:132] == b"DICM"
    group_length = int.from_bytes(data[140:144], "little")
    return data[144 + group_length:]


@pytest.fixture
def ct_small() -> bytes:
    return sample("CT_small.dcm")


@pytest.fixture
def mr_small() -> bytes:
    return sample("MR_small.dcm")
