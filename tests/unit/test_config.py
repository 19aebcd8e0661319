"""The configuration: defaults, validation, and config.example.yaml in step with them."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from isengard.config import Settings, load_config, settings_from_mapping
from isengard.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[2] / "config.example.yaml"


def _as_mapping(obj: object) -> object:
    if dataclasses.is_dataclass(obj):
        return {f.name: _as_mapping(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    return obj


def test_example_documents_every_key_with_its_default():
    documented = yaml.safe_load(EXAMPLE.read_text())
    assert documented == _as_mapping(Settings())


def test_example_loads():
    assert load_config(EXAMPLE) == Settings()


def test_empty_file_means_defaults(tmp_path):
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert load_config(empty) == Settings()


def test_defaults_match_the_issue():
    s = Settings()
    assert (s.dicom.port, s.dicom.aet, s.http.port, s.http.host) == (4242, "ISENGARD", 8042,
                                                                    "127.0.0.1")
    assert s.index_path == Path("isengard-data/index.sqlite")
    assert s.storage.sync is True and s.overwrite_instances is False and s.stable_age == 60


@pytest.mark.parametrize("data, message", [
    ({"htp": {}}, "htp: unknown key; did you mean 'http'?"),
    ({"dicom": {"aet": "A" * 17}}, "dicom.aet: 'AAAAAAAAAAAAAAAAA' is not a valid AE title"),
    ({"dicom": {"port": 70000}}, "dicom.port: port 70000 is out of range"),
    ({"dicom": {"maximum_pdu_length": 100}}, "dicom.maximum_pdu_length"),
    ({"stable_age": -1}, "stable_age"),
    ({"storage": {"sync": "yes"}}, "storage.sync: expected true or false, got string 'yes'"),
    ({"scripts": "a.py"}, "scripts: expected a list"),
    ({"log_level": "loud"}, "log_level: expected one of"),
])
def test_errors_name_the_yaml_path(data, message):
    with pytest.raises(ConfigError) as err:
        settings_from_mapping(data)
    assert message in str(err.value)


def test_command_line_overrides_win():
    s = settings_from_mapping({"http": {"port": 1}, "dicom": {"aet": "A"}}).with_overrides(
        http_port=2, aet="B", data_dir="/d", dicom_port=3)
    assert (s.http.port, s.dicom.aet, s.data_dir, s.dicom.port) == (2, "B", "/d", 3)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="cannot read the configuration file"):
        load_config(tmp_path / "nope.yaml")
