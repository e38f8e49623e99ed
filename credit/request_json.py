"""Request bodies decoded strictly: every number keeps its own text, and no key may repeat."""

from __future__ import annotations

import json
from typing import Any

from credit.domain import JsonNumber


class DuplicateKey(ValueError):
    """A JSON object names one key twice: which value was meant cannot be told."""

    def __init__(self, key: str) -> None:
        super().__init__(f"the key {key[:64]!r} appears more than once in one object")
        self.key = key


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    built = dict(pairs)
    if len(built) != len(pairs):  # a dict keeps the last value, json.loads' default
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise DuplicateKey(key)
            seen.add(key)
    return built


def _constant(name: str) -> None:
    raise ValueError(f"{name} is not a JSON number")


# One decoder for every body: json.loads with hooks builds a decoder and its scanner per call.
# Numbers stay text (JsonNumber), so the domain judges money on its digits, and no integer of
# thousands of digits is ever converted.
_DECODER = json.JSONDecoder(
    object_pairs_hook=_object,
    parse_float=JsonNumber,
    parse_int=JsonNumber,
    parse_constant=_constant,
)


def loads(raw: bytes | str) -> object:
    """Decode a body (bytes in UTF-8, -16 or -32, as json.loads detects them).

    Raises ValueError for anything that is not one JSON document (DuplicateKey for a repeated
    key, UnicodeDecodeError for bytes of no encoding) and RecursionError for nesting deeper
    than the interpreter's stack.
    """
    text = raw if isinstance(raw, str) else raw.decode(json.detect_encoding(raw), "surrogatepass")
    return _DECODER.decode(text)
