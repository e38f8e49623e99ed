"""Does nothing: measures what the runtime itself costs per invocation."""

from typing import Any


def handler(event: dict[str, Any], context: Any) -> None:
    return None
