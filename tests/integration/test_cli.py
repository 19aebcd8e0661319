"""The ``isengard`` command as an administrator uses it."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "isengard", *args], capture_output=True,
                          text=True, timeout=timeout)


def start(*args: str, cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "isengard", *args], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_http(url: str, proc: subprocess.Popen[str], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            output = proc.stdout.read() if proc.stdout else ""
            raise AssertionError(f"server exited early:\n{output}")
        try:
            if httpx.get(url + "/system", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise AssertionError("server did not answer in time")


def test_serve_with_command_line_overrides_then_sigterm(tmp_path, ct_small):
    http, dicom = free_port(), free_port()
    config = tmp_path / "site.yaml"
    config.write_text("name: Site\nhttp:\n  port: 1\ndicom:\n  aet: FROMFILE\n  host: 127.0.0.1\n")
    proc = start("serve", "--config", str(config), "--http-port", str(http), "--dicom-port",
                 str(dicom), "--aet", "CLIAET", "--data-dir", str(tmp_path / "data"),
                 cwd=tmp_path)
    try:
        url = f"http://127.0.0.1:{http}"
        wait_http(url, proc)
        system = httpx.get(url + "/system").json()
        assert (system["Name"], system["DicomAet"], system["DicomPort"]) == ("Site", "CLIAET",
                                                                            dicom)
        assert httpx.post(url + "/instances", content=ct_small).status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert "received SIGTERM" in out and "stopped" in out
    # the index was closed cleanly: no WAL left behind, and it reopens with the instance
    assert not (tmp_path / "data" / "index.sqlite-wal").exists() or \
        (tmp_path / "data" / "index.sqlite-wal").stat().st_size == 0
    assert not list((tmp_path / "data" / "storage").glob("*/*/.*.tmp"))


def test_embedded_defaults(tmp_path):
    """Unset keys take the embedded defaults: HTTP on 127.0.0.1, AE ISENGARD, data in
    ./isengard-data. (The config only keeps the DICOM listener on loopback for the test.)"""
    http, dicom = free_port(), free_port()
    config = tmp_path / "loopback.yaml"
    config.write_text("dicom:\n  host: 127.0.0.1\n")
    proc = start("--config", str(config), "--http-port", str(http), "--dicom-port", str(dicom),
                 cwd=tmp_path)
    try:
        wait_http(f"http://127.0.0.1:{http}", proc)
        system = httpx.get(f"http://127.0.0.1:{http}/system").json()
        assert system["DicomAet"] == "ISENGARD"
        assert (tmp_path / "isengard-data" / "index.sqlite").exists()
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
    assert proc.returncode == 0


def test_port_in_use_is_one_clear_line(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        result = run_cli("serve", "--http-port", str(port), "--dicom-port", str(free_port()),
                         "--data-dir", str(tmp_path))
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert f"cannot listen for HTTP on 127.0.0.1:{port}" in lines[0]
    assert "--http-port" in lines[0]


def test_dicom_port_in_use(tmp_path):
    config = tmp_path / "loopback.yaml"
    config.write_text("dicom:\n  host: 127.0.0.1\n")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        result = run_cli("serve", "--config", str(config), "--http-port", str(free_port()),
                         "--dicom-port", str(port), "--data-dir", str(tmp_path / "d"))
    assert result.returncode != 0
    assert f"cannot listen for DICOM on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("yaml_text, expected", [
    ("http:\n  prot: 8042\n", "http.prot: unknown key; did you mean 'port'?"),
    ("dicom:\n  port: fourtytwo\n", "dicom.port: expected an integer, got string 'fourtytwo'"),
    ("storage: yes\n", "storage: expected a mapping"),
    ("plugins:\n  no_such_plugin: {}\n", "plugins.no_such_plugin: no plugin named"),
    ("http: [\n", "is not valid YAML"),
])
def test_bad_config_refuses_to_start_naming_the_path(tmp_path, yaml_text, expected):
    config = tmp_path / "bad.yaml"
    config.write_text(yaml_text)
    result = run_cli("serve", "--config", str(config), "--data-dir", str(tmp_path))
    assert result.returncode == 2
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


def test_check_config(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text("dicom:\n  aet: MYPACS\n")
    assert run_cli("check-config", str(good)).returncode == 0


def test_environment_secrets(tmp_path, monkeypatch):
    from isengard.config import load_config

    config = tmp_path / "env.yaml"
    config.write_text("name: ${SITE_NAME}\ndicom:\n  port: {$env: SITE_DICOM_PORT}\n")
    monkeypatch.setenv("SITE_NAME", "Radiology")
    monkeypatch.setenv("SITE_DICOM_PORT", "11112")
    settings = load_config(config)
    assert (settings.name, settings.dicom.port) == ("Radiology", 11112)
    monkeypatch.delenv("SITE_NAME")
    from isengard.errors import ConfigError

    with pytest.raises(ConfigError, match="name: environment variable SITE_NAME is not set"):
        load_config(config)


def test_unwritable_data_dir(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = run_cli("serve", "--data-dir", str(blocker / "data"), "--http-port",
                     str(free_port()), "--dicom-port", str(free_port()))
    assert result.returncode == 1
    assert "cannot be written" in result.stderr


def test_version():
    result = run_cli("--version")
    assert result.returncode == 0 and "isengard" in result.stdout
