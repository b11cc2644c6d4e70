"""JSON through the json module's own C codec (`_json`), without importing the json package.

Importing `json` compiles its regular expressions and loads three submodules: ~1.8 ms of every CLI command
that talks to pmond, a sixth of what `pmon3 ls` costs over `pmon3 --version`. The C scanner and encoder that
`json.loads` and `json.dumps` use underneath are driven here with the same settings, so the text and values
are the same (tests/unit/test_fastjson.py compares them). Where `_json` is missing or takes other arguments
(another Python), the json package does the work.
"""

from __future__ import annotations

from typing import Any, Callable

_WHITESPACE = " \t\n\r"


def _not_serializable(o: Any) -> Any:
    raise TypeError(f"Object of type {o.__class__.__name__} is not JSON serializable")


class _Settings:
    """What `_json.make_scanner` reads from a json.JSONDecoder(): the defaults of `json.loads`."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    array_hook = None  # read from Python 3.15 on
    parse_float = float
    parse_int = int
    parse_constant = {"-Infinity": float("-inf"), "Infinity": float("inf"), "NaN": float("nan")}.__getitem__


def _c_codec() -> tuple[Callable[[str, int], tuple[Any, int]], Callable[[Any], str]]:
    import _json

    scan = _json.make_scanner(_Settings())  # type: ignore[arg-type]  # a duck-typed JSONDecoder
    make = _json.make_encoder
    ascii_string = _json.encode_basestring_ascii

    def c_dumps(obj: Any) -> str:
        # json.dumps(obj, separators=(",", ":")): check_circular (a fresh markers dict), ensure_ascii, allow_nan
        return "".join(make({}, _not_serializable, ascii_string, None, ":", ",", False, False, True)(obj, 0))

    c_dumps([1.5, "é", {"k": None}])  # this Python's encoder takes these arguments
    return scan, c_dumps


try:
    _C: Any = _c_codec()
except (ImportError, AttributeError, TypeError):  # not CPython's json accelerator: the json package does it
    _C = None


def dumps(obj: Any) -> str:
    """json.dumps(obj, separators=(",", ":"))."""
    if _C is None:
        import json

        return json.dumps(obj, separators=(",", ":"))
    text: str = _C[1](obj)
    return text


def loads(data: str | bytes) -> Any:
    """json.loads(data) for UTF-8 text: ValueError (UnicodeDecodeError, json.JSONDecodeError) when not JSON."""
    if _C is None:
        import json

        return json.loads(data)
    text = data.decode("utf-8") if isinstance(data, bytes) else data
    start = len(text) - len(text.lstrip(_WHITESPACE))
    try:
        value, end = _C[0](text, start)
    except StopIteration as exc:
        raise ValueError(f"Expecting value: char {exc.value}") from None
    if text[end:].strip(_WHITESPACE):
        raise ValueError(f"Extra data: char {end}")
    return value
