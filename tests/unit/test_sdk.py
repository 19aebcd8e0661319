"""The SDK is a contract: exact exports, documented hooks, generated docs in step."""

from __future__ import annotations

import inspect
from pathlib import Path

import isengard_sdk
from isengard_sdk import docgen, hookspecs

DOCS = Path(__file__).resolve().parents[2] / "docs" / "hooks.md"


def test_all_is_exact():
    public = {n for n in dir(isengard_sdk) if not n.startswith("_")}
    modules = {"context", "docgen", "errors", "hookspecs", "http", "settings", "testing",
               "types"}
    assert set(isengard_sdk.__all__) == public - modules


def test_every_hook_is_documented():
    names = docgen.hook_names()
    assert {"on_startup", "on_shutdown", "register_routes", "on_stored_instance", "on_change",
            "storage_backend", "filter_incoming_instance"} <= set(names)
    for name in names:
        doc = inspect.getdoc(getattr(hookspecs, name)) or ""
        assert "Called" in doc, f"{name}: say when and in which thread it is called"
        assert "On error" in doc or "on error" in doc.lower(), f"{name}: say what errors do"
        assert "Since" in doc, f"{name}: say since which version"


def test_hook_docs_are_current():
    assert DOCS.read_text() == docgen.render(), \
        "regenerate: python -m isengard_sdk.docgen > docs/hooks.md"


def test_plugins_never_import_the_kernel():
    plugins = Path(__file__).resolve().parents[2] / "plugins"
    for path in plugins.rglob("*.py"):
        for line in path.read_text().splitlines():
            stripped = line.strip()
            assert not stripped.startswith(("import isengard.", "from isengard.",
                                            "from isengard import", "import isengard\n")), \
                f"{path}: first-party plugins import isengard_sdk only"
