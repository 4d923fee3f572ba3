"""YAML text of plain data (dicts, lists, strings, numbers, booleans, None) for the rendered manifests.

Block style for people to read; every string double-quoted in JSON's escaping (a valid YAML double-quoted
scalar), so that no value changes type on the way (`"8545"`, `"on"`, `"1e3"` stay strings), except multi-line
text (a genesis, a start script), which is a literal block so that it reads as the file it is. The tests parse
every rendered file back and compare it with the data it came from.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence

_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-/]*")
# YAML 1.1 readers (PyYAML, older tools) take these as booleans or null when unquoted
_AMBIGUOUS = {"y", "n", "yes", "no", "on", "off", "true", "false", "null", "~"}


def to_yaml(value: object) -> str:
    """The YAML text of `value` (a document, ending with a newline)."""
    return "".join(_lines(value, 0)) or "{}\n"


def to_yaml_documents(values: Sequence[object]) -> str:
    """Several documents in one stream, separated by `---`."""
    return "---\n".join(to_yaml(value) for value in values)


def _key(key: object) -> str:
    if not isinstance(key, str):
        raise TypeError(f"mapping keys must be strings, got {type(key).__name__}")
    if _PLAIN_KEY.fullmatch(key) and key.lower() not in _AMBIGUOUS:
        return key
    return json.dumps(key)


def _scalar(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    raise TypeError(f"cannot write {type(value).__name__} as YAML")


def _literal_block(text: str, indent: int) -> str | None:
    """A `|` block for multi-line text that survives it unchanged, else None (then it is quoted)."""
    if "\n" not in text.rstrip("\n") or text[:1] in (" ", "\t") or "\r" in text:
        return None
    if any(not (ch.isprintable() or ch in "\n\t") for ch in text):
        return None
    body = text.rstrip("\n")
    trailing = len(text) - len(body)
    chomp = {0: "-", 1: ""}.get(trailing, "+")
    pad = " " * indent
    lines = [pad + line if line else "" for line in (body + "\n" * max(0, trailing - 1)).split("\n")]
    return f"|{chomp}\n" + "\n".join(lines) + "\n"


def _lines(value: object, indent: int) -> list[str]:
    pad = " " * indent
    if isinstance(value, Mapping):
        out = []
        for key, item in value.items():
            out.append(f"{pad}{_key(key)}:{_after(item, indent)}")
        return out
    if isinstance(value, list | tuple):
        out = []
        for item in value:
            if isinstance(item, Mapping) and item:
                nested = _lines(item, indent + 2)
                out.append(f"{pad}- {nested[0].lstrip()}")
                out.extend(nested[1:])
            else:
                out.append(f"{pad}-{_after(item, indent)}")
        return out
    return [pad + _scalar(value) + "\n"]


def _after(item: object, indent: int) -> str:
    """What follows `key:` or `-`: an inline scalar or empty collection, or a newline and the nested block."""
    if isinstance(item, Mapping):
        return " {}\n" if not item else "\n" + "".join(_lines(item, indent + 2))
    if isinstance(item, list | tuple):
        return " []\n" if not item else "\n" + "".join(_lines(item, indent + 2))
    if isinstance(item, str):
        block = _literal_block(item, indent + 2)
        if block is not None:
            return " " + block
    return " " + _scalar(item) + "\n"
