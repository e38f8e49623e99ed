"""A one-shot signal between two threads, cheaper than threading.Event.

threading.Event is a Condition over a lock, written in Python: each request that waits for
its commit built one, waited on it and was notified through it, which cost the API several
microseconds of GIL time per request. A bare lock that is created held, released once by
the setter and acquired by the waiter does the same job in C.
"""

from __future__ import annotations

import contextlib
import threading


class OneShot:
    """Set once, by any thread; wait() returns True once it is set (also after the fact)."""

    __slots__ = ("_lock", "_set")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lock.acquire()
        self._set = False

    def set(self) -> None:
        if self._set:
            return
        self._set = True
        with contextlib.suppress(RuntimeError):  # another thread set it meanwhile
            self._lock.release()

    def is_set(self) -> bool:
        return self._set

    def wait(self, timeout: float | None = None) -> bool:
        """Block until set or until `timeout` seconds pass; True when set."""
        if self._set:
            return True
        if self._lock.acquire(timeout=-1 if timeout is None else max(timeout, 0.0)):
            with contextlib.suppress(RuntimeError):  # a second set() released it already
                self._lock.release()  # for any other waiter
            return True
        return self._set
