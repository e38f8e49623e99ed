"""Which RabbitMQ each declared broker is here, and how the runtime connects to it.

A template names brokers by ARN (or by an `AWS::AmazonMQ::Broker` resource). Locally every one
of them is the broker of `--amqp-url` (default: $AMQP_URL, else the local guest broker), unless
`--broker NAME=URL` points that one (by logical id or ARN) elsewhere. The credentials are the
URL's: the template's BASIC_AUTH secret lives in AWS, not here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import quote, urlsplit, urlunsplit

import pika

from declarations.model import Broker, MqSource

AMQP_URL_VARIABLE = "AMQP_URL"
DEFAULT_AMQP_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"


class BrokerMapError(ValueError):
    """A --broker option that names no broker, or is not NAME=URL."""


def parameters(url: str) -> pika.URLParameters:
    """Connection parameters for a URL, with short timeouts: a broker that is not there
    answers within seconds, and the caller's backoff decides when to try again."""
    params = pika.URLParameters(url)
    params.connection_attempts = 1
    params.socket_timeout = 3
    params.blocked_connection_timeout = 10
    return params


def describe(url: str) -> str:
    """The URL without its password, for messages a person reads."""
    params = parameters(url)
    user = params.credentials.username
    vhost = quote(params.virtual_host, safe="")
    return f"amqp://{user}@{params.host}:{params.port}/{vhost}"


@dataclass(frozen=True)
class BrokerMap:
    """The URL each declared broker is reached at locally."""

    default_url: str
    overrides: Mapping[str, str] = field(default_factory=dict)  # logical id or ARN -> URL

    @classmethod
    def from_options(cls, amqp_url: str | None, options: list[str]) -> BrokerMap:
        default = amqp_url or os.environ.get(AMQP_URL_VARIABLE) or DEFAULT_AMQP_URL
        overrides: dict[str, str] = {}
        for option in options:
            name, sep, url = option.partition("=")
            if not sep or not name or not url.startswith(("amqp://", "amqps://")):
                raise BrokerMapError(f"--broker takes NAME=amqp://..., got {option!r}")
            overrides[name] = url
        return cls(default, overrides)

    def url(self, broker: Broker) -> str:
        for key in (broker.logical_id, broker.arn):
            if key is not None and key in self.overrides:
                return self.overrides[key]
        return self.default_url

    def check(self, sources: list[MqSource]) -> None:
        """Refuse an override that names none of the template's brokers (a typo would
        otherwise send a mapping to the default broker without a word)."""
        known = {s.broker.arn for s in sources} | {
            s.broker.logical_id for s in sources if s.broker.logical_id
        }
        unknown = sorted(set(self.overrides) - known)
        if unknown:
            raise BrokerMapError(
                f"--broker {unknown[0]}: no MQ event uses that broker "
                f"(known: {', '.join(sorted(known)) or 'none'})"
            )

    def consumed(self, source: MqSource) -> tuple[str, str]:
        """The URL a mapping consumes from and the virtual host it names in its events: the
        template's VIRTUAL_HOST when it gives one, else the URL's own."""
        url = self.url(source.broker)
        if source.virtual_host is None:
            return url, parameters(url).virtual_host
        parts = urlsplit(url)
        path = "/" + quote(source.virtual_host, safe="")
        return urlunsplit(parts._replace(path=path)), source.virtual_host
