"""Helpers to ask both servers the same thing and compare the answers."""

from __future__ import annotations

import difflib
import json
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import httpx

from isengard_sdk.testing import RunningServer

from .orthanc import OrthancProcess

__all__ = ["Pair", "assert_same", "error_keys", "without"]

# Values that legitimately differ between two servers holding the same files: when the
# resource was last touched and the storage area's file name.
VOLATILE_KEYS = frozenset({"LastUpdate", "FileUuid"})


@dataclass
class Pair:
    isengard: RunningServer
    orthanc: OrthancProcess

    def get(self, path: str, **kw: Any) -> tuple[httpx.Response, httpx.Response]:
        """``(isengard answer, orthanc answer)``."""
        return self.isengard.get(path, **kw), self.orthanc.get(path, **kw)

    def post(self, path: str, **kw: Any) -> tuple[httpx.Response, httpx.Response]:
        return self.isengard.post(path, **kw), self.orthanc.post(path, **kw)

    def delete(self, path: str) -> tuple[httpx.Response, httpx.Response]:
        return self.isengard.delete(path), self.orthanc.delete(path)

    def get_json(self, path: str, *, ignore: Collection[str] = VOLATILE_KEYS,
                 **kw: Any) -> tuple[Any, Any]:
        """GET on both, check both answer 200, return the JSON bodies minus ``ignore``."""
        ours, theirs = self.get(path, **kw)
        assert (ours.status_code, theirs.status_code) == (200, 200), (
            f"GET {path}: Isengard {ours.status_code}, Orthanc {theirs.status_code}\n"
            f"Isengard: {ours.text[:500]}\nOrthanc: {theirs.text[:500]}")
        return without(ours.json(), ignore), without(theirs.json(), ignore)

    def post_json(self, path: str, body: Any, *, ignore: Collection[str] = VOLATILE_KEYS
                  ) -> tuple[Any, Any]:
        content = body if isinstance(body, (bytes, str)) else json.dumps(body)
        ours, theirs = self.post(path, content=content)
        assert (ours.status_code, theirs.status_code) == (200, 200), (
            f"POST {path} {content!r}: Isengard {ours.status_code}, Orthanc "
            f"{theirs.status_code}\nIsengard: {ours.text[:500]}\nOrthanc: {theirs.text[:500]}")
        return without(ours.json(), ignore), without(theirs.json(), ignore)

    def assert_same_json(self, path: str, *, ignore: Collection[str] = VOLATILE_KEYS,
                         **kw: Any) -> Any:
        ours, theirs = self.get_json(path, ignore=ignore, **kw)
        assert_same(ours, theirs, f"GET {path}")
        return theirs


def without(value: Any, keys: Collection[str]) -> Any:
    """``value`` with the given keys removed from every object, at any depth."""
    if isinstance(value, dict):
        return {k: without(v, keys) for k, v in value.items() if k not in keys}
    if isinstance(value, list):
        return [without(v, keys) for v in value]
    return value


def assert_same(ours: Any, theirs: Any, where: str) -> None:
    """Equality with a unified diff of the pretty-printed JSON on failure."""
    if ours == theirs:
        return
    a = json.dumps(ours, indent=1, sort_keys=True, ensure_ascii=False).splitlines()
    b = json.dumps(theirs, indent=1, sort_keys=True, ensure_ascii=False).splitlines()
    diff = "\n".join(difflib.unified_diff(b, a, "orthanc", "isengard", lineterm="", n=2))
    raise AssertionError(f"{where}: Isengard differs from Orthanc\n{diff[:6000]}")


def error_keys(response: httpx.Response) -> list[str]:
    """The keys of an error body (Orthanc sends JSON without a Content-Type), minus
    ``Details``.

    Known, accepted difference: Orthanc omits ``Details`` when the exception it raised
    carried no message (a bad ``Level``, a missing field …); Isengard always explains.
    """
    return sorted(set(response.json()) - {"Details"})
