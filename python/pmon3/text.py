"""Escaping of text that reaches a terminal or pmond's log: a name, an argument, an error relayed from the
daemon. Controls (C0, C1, DEL) and other non-printables (format characters such as U+202E, separators such as
U+2028) are shown as escapes and never act on the terminal; printable text, non-ASCII included, is kept."""

from __future__ import annotations

import re

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\"}
_C1 = re.compile("[\u0080-\u009f]")


def _one(ch: str) -> str:
    named = _NAMED.get(ch)
    if named is not None:
        return named
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def escape(text: str) -> str:
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() and ch != "\\" else _one(ch) for ch in text)


def escape_c1_in_json(text: str) -> str:
    """JSON (and TOML basic strings) escape C0 themselves but let C1 through raw; a raw U+009B is a CSI to
    many terminals. Inside such a document C1 can only occur in strings, where \\u00XX is its exact form."""
    return _C1.sub(lambda m: f"\\u{ord(m.group(0)):04x}", text)
