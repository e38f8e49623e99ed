"""Idempotency-Key (IETF httpapi draft): the key's syntax, a request's fingerprint, and what a
key already names. Pure code, no I/O, apart from the registry of keys this process serves."""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from credit.domain import CreditRequest
from credit.errors import IdempotencyKeyInUse, ValidationError

HEADER = "Idempotency-Key"
MAX_KEY_CHARACTERS = 255
# RFC 8941 sf-string: printable ASCII, with only \" and \\ escaped.
_SF_STRING = re.compile(r'"((?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\["\\])*)"')
_ESCAPE = re.compile(r"\\([\"\\])")
# A token: RFC 8941's sf-token characters, also taken when the first is a digit (RFC 9110's
# token), since many clients send a bare UUID.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z:/]+")
EXPECTED = (
    f"must be a string of 1 to {MAX_KEY_CHARACTERS} printable ASCII characters, quoted as an"
    ' RFC 8941 sf-string ("8e03978e-40d5-43e8-bc93-6894a57f9324") or given as a bare token'
)


@dataclass(frozen=True)
class KeyClaim:
    """A request's key and the fingerprint of the request it was sent with."""

    key: str
    fingerprint: bytes


@dataclass(frozen=True)
class KeyRecord:
    """What a key already names: the ticket its first request created, and that request's
    fingerprint."""

    ticket: str
    fingerprint: bytes


@dataclass(frozen=True)
class KeyInUse:
    """A transaction that has not finished yet holds the key."""

    key: str


def parse_key(raw: str) -> str:
    """The key an Idempotency-Key header carries, or ValidationError naming the header."""
    quoted = _SF_STRING.fullmatch(raw)
    if quoted is not None:
        key = _ESCAPE.sub(r"\1", quoted.group(1))
    elif _TOKEN.fullmatch(raw):
        key = raw
    else:
        raise ValidationError({HEADER: f"{EXPECTED}; got {_shown(raw)}"})
    if not 1 <= len(key) <= MAX_KEY_CHARACTERS:
        raise ValidationError({HEADER: f"{EXPECTED}; got {len(key)} characters"})
    return key


def fingerprint(request: CreditRequest) -> bytes:
    """SHA-256 of the validated request in canonical form: the same age and value give the
    same fingerprint whatever the key order, spacing or spelling (100, 100.00, 1e2)."""
    value = format(request.value.normalize(), "f")  # a validated value has <= 15 digits
    return hashlib.sha256(f"age={request.age};value={value}".encode()).digest()


class KeysInFlight:
    """The keys this process is serving right now, so a second request with one of them is
    told at once that the first is still in progress, instead of racing it to MySQL."""

    def __init__(self) -> None:
        self._keys: set[str] = set()
        self._lock = threading.Lock()

    @contextmanager
    def hold(self, key: str | None) -> Iterator[None]:
        """Mark the key in flight for the block; IdempotencyKeyInUse if it already is."""
        if key is None:
            yield
            return
        with self._lock:
            if key in self._keys:
                raise IdempotencyKeyInUse(key)
            self._keys.add(key)
        try:
            yield
        finally:
            with self._lock:
                self._keys.discard(key)


def _shown(raw: str) -> str:
    return repr(raw) if len(raw) <= 40 else f"{raw[:24]!r}... ({len(raw)} characters)"
