"""pmon3.fastjson gives the text and values of json.dumps(..., separators=(",", ":")) and json.loads, on the
C codec and on its json-package fallback."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import pytest
from pmon3 import fastjson

VALUES: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    2**70,
    -(2**64),
    1.5,
    -0.0,
    1e300,
    5e-324,
    0.1 + 0.2,
    math.inf,
    -math.inf,
    "",
    "é",
    "\u2028\u2029",
    "\x00\x1f\x7f",
    '"\\/',
    "😀",
    "\ud800",  # a lone surrogate: escaped, and read back as itself
    [],
    {},
    (1, "two"),
    {"k": [1, {"n": None, "t": [True, False]}], "é": "ü"},
    {3: "int key", 2.5: "float key", True: "bool key", None: "null key"},
    [[[[[[[["deep"]]]]]]]],
]


@pytest.fixture(params=["c", "json package"])
def codec(request: pytest.FixtureRequest) -> Iterator[str]:
    saved = fastjson._C
    if request.param != "c":
        fastjson._C = None
    else:
        assert saved is not None, "the C codec did not load on this CPython"
    try:
        yield request.param
    finally:
        fastjson._C = saved


@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_dumps_is_json_dumps_compact(codec: str, value: Any) -> None:
    assert fastjson.dumps(value) == json.dumps(value, separators=(",", ":"))


@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_loads_is_json_loads(codec: str, value: Any) -> None:
    for text in (json.dumps(value), json.dumps(value, indent=2), f" \t\n{json.dumps(value)}\r\n "):
        for data in (text, text.encode()):
            got = fastjson.loads(data)
            assert type(got) is type(json.loads(text))
            assert json.dumps(got) == json.dumps(json.loads(text))  # NaN-safe equality of the values
    assert math.isnan(fastjson.loads("NaN"))


@pytest.mark.parametrize("text", ["", " ", "[1,", "{}x", "[1] [2]", "nul", "{'a': 1}", '"\x01"', "[1,]", b"\xff\xfe"])
def test_loads_refuses_what_json_refuses(codec: str, text: str | bytes) -> None:
    with pytest.raises(ValueError):
        json.loads(text)
    with pytest.raises(ValueError):
        fastjson.loads(text)


def test_dumps_refuses_what_json_refuses(codec: str) -> None:
    loop: list[Any] = []
    loop.append(loop)
    for bad, error in (({1, 2}, TypeError), (object(), TypeError), (loop, ValueError), ({(1, 2): 3}, TypeError)):
        with pytest.raises(error):
            json.dumps(bad, separators=(",", ":"))
        with pytest.raises(error):
            fastjson.dumps(bad)


def test_deep_nesting_is_a_recursion_error_as_in_json(codec: str) -> None:
    with pytest.raises(RecursionError):
        fastjson.loads("[" * 200_000 + "]" * 200_000)
