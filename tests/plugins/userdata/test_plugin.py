"""The ``userdata`` plugin is a plugin like any other: it can be switched off, and what
it serves rests on SDK services that third-party plugins use the same way."""

from __future__ import annotations

import json
import threading

import pytest

from isengard_sdk import Context, HttpError, ResourceLevel, StoredInstance, hookimpl
from tests.conftest import sample
from tests.plugins.test_hooks import wait_for

CONFIG = {"user_metadata": {"Score": 1024}, "user_content_types": {"report": 1030}}


def test_switched_off_its_routes_are_gone_and_the_kernel_goes_on(isengard_factory):
    server = isengard_factory({**CONFIG, "plugins": {"userdata": {"enabled": False}}})
    instance = server.upload(sample("CT_small.dcm"))["ID"]
    assert "userdata" not in server.get("/plugins").json()
    for method, path in (("PUT", f"/instances/{instance}/labels/urgent"),
                         ("GET", "/tools/labels"),
                         ("PUT", f"/instances/{instance}/attachments/report"),
                         ("GET", f"/instances/{instance}/attachments")):
        assert server.client.request(method, path, content=b"x").status_code in (404, 405), path
    # Reading metadata is the kernel's, with or without the plugin.
    assert server.get(f"/instances/{instance}/metadata/Origin").text == "RestApi"
    r = server.put(f"/instances/{instance}/metadata/Score", content=b"9")
    assert r.status_code == 405  # the kernel serves GET only


class Annotator:
    """A third-party plugin: labels every stored CT and attaches a report to its study,
    through the SDK's user-data services only."""

    def __init__(self) -> None:
        self.context: Context | None = None
        self.errors: list[HttpError] = []
        self.done = threading.Event()

    @hookimpl
    def on_startup(self, context: Context) -> None:
        self.context = context

    @hookimpl
    def on_stored_instance(self, context: Context, instance: StoredInstance) -> None:
        services = context.services
        services.add_label(ResourceLevel.STUDY, instance.parent_study, "ai-reviewed")
        services.put_attachment(ResourceLevel.STUDY, instance.parent_study, "report",
                                b'{"finding": "none"}')
        services.set_user_metadata(ResourceLevel.INSTANCE, instance.id, "Score", "0.12")
        for bad in (lambda: services.add_label(ResourceLevel.STUDY, instance.parent_study,
                                               "not a label!"),
                    lambda: services.set_user_metadata(ResourceLevel.INSTANCE, instance.id,
                                                       "Origin", "forged"),
                    lambda: services.put_attachment(ResourceLevel.STUDY, "no-such-study",
                                                    "report", b"")):
            try:
                bad()
            except HttpError as exc:
                self.errors.append(exc)
        self.done.set()


def test_a_third_party_plugin_annotates_through_the_services(isengard_factory):
    annotator = Annotator()
    server = isengard_factory({**CONFIG, "plugins": {"annotator": {}}},
                              plugins=[("annotator", annotator)])
    stored = server.upload(sample("CT_small.dcm"))
    wait_for(annotator.done.is_set)
    study, instance = stored["ParentStudy"], stored["ID"]

    assert [e.status for e in annotator.errors] == [400, 403, 404]
    assert server.get(f"/studies/{study}/labels").json() == ["ai-reviewed"]
    assert server.get(f"/studies/{study}/attachments/report/data").content == \
        b'{"finding": "none"}'
    assert server.get(f"/instances/{instance}/metadata/Score").text == "0.12"
    found = server.post("/tools/find", content=json.dumps(
        {"Level": "Study", "Query": {}, "Labels": ["ai-reviewed"]})).json()
    assert found == [study]

    services = annotator.context.services if annotator.context else None
    assert services is not None
    info = services.attachment_info(ResourceLevel.STUDY, study, "report")
    assert (info.content_type, info.uncompressed_size, info.compressed) == (1030, 19, False)
    services.set_attachment_compression(ResourceLevel.STUDY, study, "report", True)
    assert services.attachment_info(ResourceLevel.STUDY, study, "report").compressed
    assert services.read_attachment(ResourceLevel.STUDY, study, "report") == \
        b'{"finding": "none"}'
    services.verify_attachment(ResourceLevel.STUDY, study, "report")
    services.delete_attachment(ResourceLevel.STUDY, study, "report")
    assert services.attachments(ResourceLevel.STUDY, study) == {}
    services.remove_label(ResourceLevel.STUDY, study, "ai-reviewed")
    assert services.all_labels() == []
    with pytest.raises(HttpError) as missing:
        services.delete_user_metadata(ResourceLevel.INSTANCE, instance, "NoSuchName")
    assert missing.value.status == 404
