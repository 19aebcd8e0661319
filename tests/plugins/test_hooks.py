"""A recording plugin proves that every hook fires, with the documented arguments."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import pytest
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from isengard_sdk import (
    Change,
    ChangeType,
    Context,
    IncomingInstance,
    ResourceLevel,
    StoredInstance,
    docgen,
    hookimpl,
)
from tests.conftest import sample

CT_ID = "f689ddd2-662f8fe1-8b18180d-ec2a2cee-937917af"


def wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached before the deadline")
        time.sleep(0.02)


@dataclass(frozen=True)
class RecorderSettings:
    greeting: str = "hello"


class Recorder:
    """Implements every hook and records its calls."""

    Settings = RecorderSettings

    def __init__(self) -> None:
        self.calls: list[tuple[str, object]] = []
        self.lock = threading.Lock()

    def _record(self, name: str, value: object) -> None:
        with self.lock:
            self.calls.append((name, value))

    def names(self) -> list[str]:
        with self.lock:
            return [n for n, _ in self.calls]

    def values(self, name: str) -> list[object]:
        with self.lock:
            return [v for n, v in self.calls if n == name]

    @hookimpl
    def on_startup(self, context: Context) -> None:
        self._record("on_startup", context)

    @hookimpl
    def on_shutdown(self, context: Context) -> None:
        self._record("on_shutdown", context)

    @hookimpl
    def register_routes(self, context: Context):
        greeting = context.settings.greeting

        async def hello(request):
            return PlainTextResponse(greeting)

        self._record("register_routes", context)
        return [Route("/recorder/hello", hello)]

    @hookimpl
    def register_job_types(self, context: Context):
        self._record("register_job_types", context)

        def count(job):
            for i in range(job.parameters["n"]):
                job.progress(i, job.parameters["n"])
            return {"Counted": job.parameters["n"], "By": context.name}

        return [("RecorderCount", count)]

    @hookimpl
    def storage_backend(self, context: Context):
        self._record("storage_backend", context)
        return None  # keep the default storage

    @hookimpl
    def filter_incoming_instance(self, context: Context, instance: IncomingInstance):
        self._record("filter_incoming_instance", instance)
        return instance.tags.get("PatientID") != "REJECT-ME"

    @hookimpl
    def decode_image(self, context: Context, data: bytes, media_type: str):
        self._record("decode_image", (len(data), media_type))
        return None  # proven with the rendering plugin in test_create_dicom.py

    @hookimpl
    def transcode(self, context: Context, data: bytes, transfer_syntax_uid: str):
        self._record("transcode", (len(data), transfer_syntax_uid))
        return None

    @hookimpl
    def on_stored_instance(self, context: Context, instance: StoredInstance) -> None:
        self._record("on_stored_instance", instance)

    @hookimpl
    def on_change(self, context: Context, change: Change) -> None:
        self._record("on_change", change)


def test_every_hookspec_is_implemented_by_the_recorder():
    hooks = set(docgen.hook_names())
    assert hooks == {n for n in dir(Recorder) if n in hooks}, \
        "a new hook needs a test here (transcode is proven in test_modalities_scu.py)"


def test_every_hook_fires_with_documented_arguments(isengard_factory, dicom_factory):
    rec = Recorder()
    server = isengard_factory({"plugins": {"recorder": {"greeting": "hi there"}}},
                              plugins=[("recorder", rec)], use_entry_points=False)
    names = rec.names()
    assert names.index("storage_backend") < names.index("on_startup")
    ctx = rec.values("on_startup")[0]
    assert isinstance(ctx, Context)
    assert ctx.name == "recorder"
    assert ctx.settings == RecorderSettings(greeting="hi there")
    assert ctx.log.name == "isengard.plugins.recorder"
    assert ctx.server.dicom_port == server.dicom_port
    assert ctx.server.http_url == server.url

    assert server.get("/recorder/hello").text == "hi there"
    job = ctx.services.run_job("RecorderCount", {"n": 3})
    assert job["State"] == "Success" and job["Content"] == {"Counted": 3, "By": "recorder"}
    queued = ctx.services.submit_job("RecorderCount", {"n": 2}, priority=1)
    wait_for(lambda: server.get(f"/jobs/{queued}").json()["State"] == "Success")
    assert server.get("/plugins").json() == ["recorder"]

    answer = server.upload(sample("CT_small.dcm"))
    assert answer["ID"] == CT_ID
    incoming = rec.values("filter_incoming_instance")[0]
    assert isinstance(incoming, IncomingInstance)
    assert incoming.origin == "RestApi"
    assert incoming.sop_instance_uid == "1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322"
    assert incoming.tags["PatientID"] == "1CT1"

    wait_for(lambda: rec.values("on_stored_instance"))
    stored = rec.values("on_stored_instance")[0]
    assert isinstance(stored, StoredInstance)
    assert (stored.id, stored.parent_patient) == (CT_ID, answer["ParentPatient"])
    assert stored.parent_study == answer["ParentStudy"]
    assert stored.parent_series == answer["ParentSeries"]
    assert stored.origin == "RestApi"
    assert stored.transfer_syntax_uid == "1.2.840.10008.1.2.1"

    wait_for(lambda: len(rec.values("on_change")) >= 4)
    changes = rec.values("on_change")
    assert all(isinstance(c, Change) for c in changes)
    assert [c.change_type for c in changes[:4]] == [
        ChangeType.NEW_INSTANCE, ChangeType.NEW_SERIES, ChangeType.NEW_STUDY,
        ChangeType.NEW_PATIENT]
    assert changes[0].level is ResourceLevel.INSTANCE and changes[0].id == CT_ID

    # a veto: HTTP 403, nothing stored
    r = server.post("/instances", content=dicom_factory.instance(PatientID="REJECT-ME"))
    assert r.status_code == 403
    assert "recorder" in r.json()["Details"]
    assert server.get("/instances").json() == [CT_ID]

    server.stop()
    assert rec.names()[-1] == "on_shutdown"


class Exploding:
    @hookimpl
    def on_stored_instance(self, context, instance):
        raise RuntimeError("boom")

    @hookimpl
    def register_routes(self, context):
        raise RuntimeError("no routes today")


def test_a_failing_plugin_is_isolated_and_logged(isengard_factory, caplog):
    rec = Recorder()
    server = isengard_factory({"plugins": {"exploding": {}, "recorder": {}}},
                              plugins=[("exploding", Exploding()), ("recorder", rec)])
    server.upload(sample("CT_small.dcm"))
    wait_for(lambda: rec.values("on_stored_instance"))
    assert server.get("/recorder/hello").status_code == 200
    text = caplog.text
    assert "plugin 'exploding' failed in register_routes" in text
    wait_for(lambda: "plugin 'exploding' failed in on_stored_instance" in caplog.text)


class FailingFilter:
    @hookimpl
    def filter_incoming_instance(self, instance):
        raise ValueError("cannot decide")


def test_a_failing_filter_rejects(isengard_factory, ct_small):
    server = isengard_factory({"plugins": {"failing": {}}}, plugins=[("failing", FailingFilter())])
    r = server.post("/instances", content=ct_small)
    assert r.status_code == 403
    assert "cannot decide" in r.json()["Details"]
    assert server.get("/statistics").json()["CountInstances"] == 0


def test_installed_is_not_enabled(isengard_factory):
    rec = Recorder()
    server = isengard_factory(plugins=[("recorder", rec)], use_entry_points=False)
    assert server.get("/plugins").json() == []
    assert rec.calls == []
    assert server.get("/recorder/hello").status_code == 404


def test_disabled_plugin_does_not_run(isengard_factory):
    rec = Recorder()
    server = isengard_factory({"plugins": {"recorder": {"enabled": False}}},
                              plugins=[("recorder", rec)], use_entry_points=False)
    assert server.get("/plugins").json() == []
    assert rec.calls == []


def test_script_plugins_are_loaded_from_the_config(isengard_factory, tmp_path, ct_small):
    script = tmp_path / "route_hook.py"
    script.write_text(
        "from isengard_sdk import hookimpl\n"
        "seen = []\n"
        "@hookimpl\n"
        "def filter_incoming_instance(instance):\n"
        "    seen.append(instance.sop_instance_uid)\n"
        "    return 'no CT today' if instance.tags.get('Modality') == 'CT' else None\n")
    server = isengard_factory({"scripts": [str(script)]}, use_entry_points=False)
    assert server.get("/plugins").json() == ["route_hook"]
    r = server.post("/instances", content=ct_small)
    assert r.status_code == 403
    assert "no CT today" in r.json()["Details"]


@pytest.mark.parametrize("config, message", [
    ({"plugins": {"nope": {}}}, "no plugin named 'nope' is installed"),
    ({"plugins": {"recorder": {"greting": "x"}}}, "plugins.recorder.greting: unknown key"),
    ({"plugins": {"recorder": {"greeting": 3}}}, "plugins.recorder.greeting: expected a string"),
    ({"plugins": {"recorder": {"enabled": "yes"}}}, "plugins.recorder.enabled"),
])
def test_bad_plugin_configuration_refuses_to_start(isengard_factory, config, message):
    from isengard.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        isengard_factory(config, plugins=[("recorder", Recorder())])
    assert message in str(err.value)


class Misspelled:
    @hookimpl
    def on_stored_instanse(self, instance):  # typo: must be caught at start-up
        pass


def test_misspelled_hook_is_caught_at_startup(isengard_factory):
    from isengard.errors import ConfigError

    with pytest.raises(ConfigError, match="on_stored_instanse"):
        isengard_factory({"plugins": {"typo": {}}}, plugins=[("typo", Misspelled())])
