"""Capped exponential backoff, kept apart from the loops that use it."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass
class Backoff:
    """Delays initial, 2x, 4x ... up to cap, with a little jitter; reset() after a success."""

    initial: float = 0.5
    cap: float = 10.0
    factor: float = 2.0
    jitter: float = 0.1
    _next: float = 0.0

    def next_delay(self) -> float:
        delay = self._next or self.initial
        self._next = min(self.cap, delay * self.factor)
        return delay * (1 + random.uniform(-self.jitter, self.jitter))  # noqa: S311 - not crypto

    def reset(self) -> None:
        self._next = 0.0

    @property
    def failing(self) -> bool:
        return self._next > 0
