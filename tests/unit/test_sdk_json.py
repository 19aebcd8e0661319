"""JSON as Orthanc indents it: the same text as the standard library's, byte for byte."""

from __future__ import annotations

import enum
import json
import random

import pytest

from isengard_sdk._json import dumps_indented


def reference(value, indent=3):
    return json.dumps(value, indent=indent, ensure_ascii=False)


class Level(enum.IntEnum):
    STUDY = 2


class Text(str):
    pass


EDGE_CASES = [
    None, True, False, 0, -1, 2**80, 1.5, -0.0, 1e300, 1e-300, float("nan"), float("inf"),
    float("-inf"), "", "plain", "é^ü 中文", "quote \" backslash \\ slash /", "\n\t\r\x00\x1f\x7f",
    "\u2028\u2029", "\ud800", [], {}, (), [[]], {"a": {}}, {"a": []}, ("t", 1), [None, [None]],
    {7: "int key", 2.5: "float key", True: "bool key", None: "none key", "s": "str key"},
    {Level.STUDY: Level.STUDY}, [Text("subclass")], {"nested": {"deeper": [1, {"x": [2.0]}]}},
]


@pytest.mark.parametrize("value", EDGE_CASES, ids=repr)
def test_edge_cases(value):
    assert dumps_indented(value) == reference(value)


def _random_value(rng: random.Random, depth: int):
    kind = rng.randrange(10 if depth < 5 else 7)
    if kind == 0:
        return rng.choice([None, True, False])
    if kind == 1:
        return rng.randint(-10**20, 10**20)
    if kind == 2:
        return rng.choice([rng.uniform(-1e6, 1e6), rng.random(), float(rng.randint(-5, 5))])
    if kind in (3, 4, 5, 6):
        alphabet = "abcXYZ019 ^\\\"/\n\té中\x01"
        return "".join(rng.choice(alphabet) for _ in range(rng.randrange(12)))
    if kind in (7, 8):
        return {rng.choice(["ID", "Type", "Value", "Name", "0008,0005", "é"]) + str(i):
                _random_value(rng, depth + 1) for i in range(rng.randrange(6))}
    return [_random_value(rng, depth + 1) for _ in range(rng.randrange(6))]


def test_random_documents_with_every_indent():
    rng = random.Random(20261208)
    for _ in range(2000):
        value = _random_value(rng, 0)
        for indent in (3, 0, 1):
            assert dumps_indented(value, indent) == reference(value, indent)


@pytest.mark.parametrize("value, message", [
    ({(1, 2): "tuple key"}, "keys must be str, int, float, bool or None, not tuple"),
    ([object()], "Object of type object is not JSON serializable"),
    ({"set": {1}}, "Object of type set is not JSON serializable"),
    (b"bytes", "Object of type bytes is not JSON serializable"),
])
def test_what_json_refuses_is_refused_alike(value, message):
    with pytest.raises(TypeError, match=message):
        reference(value)
    with pytest.raises(TypeError, match=message):
        dumps_indented(value)
