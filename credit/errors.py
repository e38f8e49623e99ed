"""The shared package's error hierarchy; adapters translate driver exceptions into it."""


class CreditError(Exception):
    """Base of every error raised on purpose by the shared package."""


class ValidationError(CreditError):
    """Input does not satisfy the contract; `problems` maps each field to what was expected."""

    def __init__(self, problems: dict[str, str]) -> None:
        self.problems = dict(problems)
        super().__init__("; ".join(f"{name}: {why}" for name, why in self.problems.items()))


class StoreUnavailable(CreditError):
    """A backing service (MySQL, Redis, RabbitMQ) cannot be reached or refused the operation."""


class PublishError(StoreUnavailable):
    """A message was nacked, returned as unroutable, or the broker could not be reached."""


class TicketNotFound(CreditError):
    """No ticket has the requested id."""


class OutcomeUnknown(CreditError):
    """A write was sent and MySQL could not be asked whether it committed, so neither
    "stored" nor "not stored" is known to be true. Never a StoreUnavailable: that one
    promises nothing was stored. `tickets` are the tickets whose fate is unknown."""

    def __init__(self, message: str, tickets: tuple[str, ...]) -> None:
        super().__init__(message)
        self.tickets = tickets


class IdempotencyKeyInUse(CreditError):
    """Another request with the same Idempotency-Key is still being processed."""


class IdempotencyKeyReused(CreditError):
    """An Idempotency-Key already names a request with another body."""
