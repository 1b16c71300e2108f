"""How request values are named in error messages: their JSON kind, a short rendering, short lists."""

from __future__ import annotations

import json
from collections.abc import Sequence

SHOWN_NAMES = 6
_SHOWN_CHARS = 40
_KINDS = {
    bool: "a boolean",
    str: "a string",
    list: "a list",
    dict: "an object",
    int: "a number",
    float: "a number",
}


def kind_of(value) -> str:
    """The value's JSON kind with its article ("a string", "null"), as a message names it."""
    if value is None:
        return "null"
    return _KINDS.get(type(value), type(value).__name__)


def _cut(text: str) -> str:
    return text if len(text) <= _SHOWN_CHARS else text[: _SHOWN_CHARS - 3] + "..."


def json_text(value) -> str:
    """The value as JSON (its repr if it has none), uncut."""
    try:
        return json.dumps(value, allow_nan=False, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(value)


def show(value) -> str:
    """A short rendering of a value: repr for strings ('7'), JSON otherwise; cut at 40 characters."""
    return _cut(repr(value) if isinstance(value, str) else json_text(value))


def show_json(value) -> str:
    """A short JSON rendering of a value ("x", 3, true), cut at 40 characters."""
    return _cut(json_text(value))


def described(value) -> str:
    """The value's kind and, unless it is null, the value: 'a string ("x")'."""
    return "null" if value is None else f"{kind_of(value)} ({show_json(value)})"


def hint(names: Sequence[str]) -> str:
    """A list of names for a message: all of them, or the first few, '...' and the last."""
    names = [str(name) for name in names]
    if len(names) <= SHOWN_NAMES:
        return ", ".join(names)
    return ", ".join(names[: SHOWN_NAMES - 1]) + f", ... {names[-1]}"
