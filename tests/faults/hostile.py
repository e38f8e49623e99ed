"""Hostile and careless HTTP clients: framing tricks, odd money spellings, slow and idle crowds."""

from __future__ import annotations

import contextlib
import enum
import logging
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Context, Decimal
from pathlib import Path

from tests.faults.load import UNKNOWN, Accepted, Ledger

LOGGER = logging.getLogger(__name__)
CONNECT_SECONDS = 5.0
ANSWER_SECONDS = 3.0  # how long a probe waits for an answer, then for the connection to close
EARLY_SECONDS = 0.5  # a server may answer a bad head before the client sends the rest
STREAM_BYTES = 256 * 1024  # what a client streams after a chunk size the server must refuse
STATUS_LINE = re.compile(rb"HTTP/1\.[01] (\d{3})[^\r\n]*\r\n")
HOSTILE_AGES = range(91, 151)  # the load generator asks for ages 10-90, never these
HIDDEN_AGE, HIDDEN_VALUE = 150, Decimal("4242.42")  # what a smuggled request asks for
MAX_API_THREADS = 256  # far above a pool's size, far below one thread per held connection
SAMPLE_SECONDS = 0.5
MAX_VALUE = Decimal("1e12")


def body(age: int, value: Decimal | str) -> bytes:
    """A valid credit-request body."""
    return f'{{"age": {age}, "value": {value}}}'.encode()


def post_head(target: bytes = b"/credit-request", line_end: bytes = b"\r\n") -> bytes:
    """A request line and the headers every POST carries, without any framing header."""
    return (
        b"POST " + target + b" HTTP/1.1" + line_end + b"Host: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\n"
    )


def framed(content: bytes, head: bytes | None = None) -> bytes:
    """A whole request with a Content-Length body."""
    return (head or post_head()) + b"Content-Length: %d\r\n\r\n" % len(content) + content


HIDDEN_REQUEST = framed(body(HIDDEN_AGE, HIDDEN_VALUE))


# --- framing and smuggling ---------------------------------------------------------------


@dataclass(frozen=True)
class FramingProbe:
    """Bytes a strict HTTP/1.1 parser must refuse: a 4xx (or 501) and the connection closed.

    `then` is sent only if the server has not answered `first` within EARLY_SECONDS, the way
    a client streaming a body would go on. `age`/`value` is what the request's own body asks
    for, when it has one the API would accept.
    """

    name: str
    first: bytes
    then: bytes = b""
    age: int | None = None
    value: Decimal | None = None


def _smuggling(name: str, framing: bytes) -> FramingProbe:
    """A request whose framing headers disagree, carrying a complete request hidden behind an
    empty chunked body: a server that reads it as chunked runs the hidden request next."""
    content = b"0\r\n\r\n" + HIDDEN_REQUEST
    head = post_head() + framing.replace(b"{n}", str(len(content)).encode())
    return FramingProbe(name, head + b"\r\n" + content)


def _with_body(name: str, head: bytes, age: int, value: Decimal) -> FramingProbe:
    return FramingProbe(name, framed(body(age, value), head), age=age, value=value)


def _chunked(name: str, spell: Callable[[int], bytes], age: int, value: Decimal) -> FramingProbe:
    """A valid body in one chunk whose size is spelled by `spell` (a parser must refuse it)."""
    content = body(age, value)
    chunks = spell(len(content)) + b"\r\n" + content + b"\r\n0\r\n\r\n"
    head = post_head() + b"Transfer-Encoding: chunked\r\n\r\n"
    return FramingProbe(name, head + chunks, age=age, value=value)


def framing_probes(ages: Iterator[int]) -> list[FramingProbe]:
    """Every framing trick once; requests with a valid body ask for ages drawn from `ages`."""
    chunked = post_head() + b"Transfer-Encoding: chunked\r\n\r\n"
    value = Decimal("1234.56")
    probes = [
        _smuggling("CL then TE", b"Content-Length: {n}\r\nTransfer-Encoding: chunked\r\n"),
        _smuggling("TE then CL", b"Transfer-Encoding: chunked\r\nContent-Length: {n}\r\n"),
        _smuggling("TE notchunked", b"Transfer-Encoding: notchunked\r\nContent-Length: {n}\r\n"),
        _smuggling("TE chunked, x", b"Transfer-Encoding: chunked, x\r\n"),
        _smuggling("TE space before colon", b"Transfer-Encoding : chunked\r\n"),
        _smuggling("two Content-Lengths", b"Content-Length: 0\r\nContent-Length: {n}\r\n"),
        FramingProbe("chunk size -1", chunked + b"-1\r\n", b"a" * STREAM_BYTES),
        FramingProbe("chunk size -5", chunked + b"-5\r\nhello\r\n0\r\n\r\n"),
        FramingProbe("chunk size zz", chunked + b"zz\r\nhello\r\n0\r\n\r\n"),
        _chunked("chunk size 0x prefix", lambda n: b"0x%x" % n, next(ages), value),
        _chunked("chunk size with _", _underscored, next(ages), value),
        FramingProbe("Content-Length: \xb2", post_head() + b"Content-Length: \xb2\r\n\r\n{}"),
        FramingProbe("Content-Length: +2", post_head() + b"Content-Length: +2\r\n\r\n{}"),
        FramingProbe("Content-Length: -1", post_head() + b"Content-Length: -1\r\n\r\n{}"),
        _with_body("obs-fold", post_head() + b"X-Note: a\r\n folded\r\n", next(ages), value),
        _with_body("bare CR in a header", post_head() + b"X-Note: a\rb\r\n", next(ages), value),
        _with_body("NUL in a header", post_head() + b"X-Note: a\x00b\r\n", next(ages), value),
        _with_body("bare CR ends the request line", post_head(line_end=b"\r"), next(ages), value),
    ]
    for name, target in (
        ("target without /", b"credit-request"),
        ("target with #fragment", b"/credit-request#x"),
        ("target with a control byte", b"/credit-request?note=\x01"),
        ("target with DEL", b"/credit-request?\x7f"),
        ("target with a non-ASCII byte", b"/credit-request?\xff"),
        ("asterisk target on POST", b"*"),
    ):
        probes.append(_with_body(name, post_head(target), next(ages), value))
    return probes


def _underscored(size: int) -> bytes:
    """A chunk size with an underscore between its hex digits (Python's int() accepts it)."""
    digits = b"%x" % size
    return digits[:1] + b"_" + digits[1:]


@dataclass(frozen=True)
class Exchange:
    """What came back on one connection: the bytes, and whether the server closed it."""

    data: bytes
    closed: bool
    error: str | None = None

    @property
    def statuses(self) -> list[int]:
        return [int(m.group(1)) for m in STATUS_LINE.finditer(self.data)]

    def ticket(self) -> str | None:
        """The ticket of a 202 answer, if the first answer is one."""
        head, _, rest = self.data.partition(b"\r\n\r\n")
        if not head.startswith((b"HTTP/1.1 202", b"HTTP/1.0 202")):
            return None
        match = re.search(rb'"ticket":\s*"([0-9a-f-]{36})"', rest)
        return match.group(1).decode() if match else None


def exchange(port: int, first: bytes, then: bytes = b"") -> Exchange:
    """Send `first` (and `then`, unless the server answered meanwhile); read until closed."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=CONNECT_SECONDS)
    try:
        error = _send(sock, first)
        data, closed = _read(sock, EARLY_SECONDS if then else ANSWER_SECONDS)
        if then and not data and not closed and error is None:
            error = _send(sock, then)
            more, closed = _read(sock, ANSWER_SECONDS)
            data += more
        elif data and not closed:
            more, closed = _read(sock, ANSWER_SECONDS)
            data += more
        return Exchange(data, closed, error)
    finally:
        sock.close()


def _send(sock: socket.socket, payload: bytes) -> str | None:
    try:
        sock.sendall(payload)
    except OSError as exc:  # the server may close before it has read everything
        return f"{type(exc).__name__} while sending"
    return None


def _read(sock: socket.socket, seconds: float) -> tuple[bytes, bool]:
    """What arrives within `seconds`, and True if the server closed the connection."""
    data = bytearray()
    deadline = time.monotonic() + seconds
    while (remaining := deadline - time.monotonic()) > 0:
        sock.settimeout(remaining)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            return bytes(data), False
        except OSError:  # reset: closed, possibly before everything it sent arrived
            return bytes(data), True
        if not chunk:
            return bytes(data), True
        data += chunk
    return bytes(data), False


def refusal_problem(exchange: Exchange) -> str | None:
    """Why an answer to a bad request is not a refusal that closes the connection, or None."""
    statuses = exchange.statuses
    if not statuses:
        closed = "closed" if exchange.closed else "left open"
        error = f" ({exchange.error})" if exchange.error else ""
        return f"no answer, connection {closed}{error}"
    if len(statuses) > 1:
        return f"{len(statuses)} answers {statuses}: a request hidden in the body ran"
    if not (400 <= statuses[0] < 500 or statuses[0] == 501):
        return f"answered {statuses[0]}"
    if not exchange.closed:
        return f"answered {statuses[0]} but left the connection open"
    return None


@dataclass
class ProbeTally:
    """What the hostile clients of a scenario found, and what they were told."""

    ledger: Ledger = field(default_factory=Ledger)
    found: Counter[str] = field(default_factory=Counter)
    sent: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def problem(self, text: str) -> None:
        LOGGER.error("hostile client: %s", text)
        with self._lock:
            self.found[text] += 1

    @property
    def problems(self) -> list[str]:
        """Each problem once, with how many rounds met it."""
        return [text if n == 1 else f"{text} (x{n})" for text, n in self.found.items()]


def run_framing(port: int, probe: FramingProbe, tally: ProbeTally) -> None:
    """Send one framing probe and record what it was told."""
    try:
        answer = exchange(port, probe.first, probe.then)
    except OSError as exc:
        tally.problem(f"{probe.name}: could not connect ({exc!r})")
        return
    tally.sent += 1
    if probe.age is not None and probe.value is not None:
        ticket = answer.ticket()
        if ticket is not None:
            tally.ledger.accept(Accepted(ticket, probe.age, probe.value, time.monotonic()))
        else:
            outcome = f"HTTP {answer.statuses[0]}" if answer.statuses else UNKNOWN
            tally.ledger.attempt(probe.age, probe.value, outcome)
    problem = refusal_problem(answer)
    if problem is not None:
        tally.problem(f"{probe.name}: {problem}")


# --- money -------------------------------------------------------------------------------


class Verdict(enum.Enum):
    """What the API must do with a spelling of money."""

    REFUSE = "must be refused"  # over two decimals, out of range, not a number, duplicate key
    ACCEPT = "must be accepted"  # plain money
    EITHER = "may be accepted"  # an exact amount of at most two decimals, spelled oddly


@dataclass(frozen=True)
class MoneyProbe:
    """One POST body: `template` with {age} filled in, what it asks for, what must happen.

    `named` lists every (age, value) the body names, in order (None: the probe's own age);
    a body with a duplicate key names two, and a last-wins parser would store the last.
    """

    template: str
    verdict: Verdict
    named: tuple[tuple[int | None, Decimal], ...]

    def render(self, age: int) -> bytes:
        return self.template.replace("{age}", str(age)).encode()


JSON_NUMBER = re.compile(r"-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?")
EXACT = Context(prec=10_000, Emin=-100_000, Emax=100_000)  # no rounding of any amount here


def _money(text: str) -> MoneyProbe:
    """A value spelled `text`, judged on its exact amount, never after rounding."""
    template = '{"age": {age}, "value": ' + text + "}"
    if not JSON_NUMBER.fullmatch(text):
        return MoneyProbe(template, Verdict.REFUSE, ())
    amount = Decimal(text)
    named = ((None, amount),)
    exponent = amount.normalize(EXACT).as_tuple().exponent
    if not 0 < amount <= MAX_VALUE or (isinstance(exponent, int) and exponent < -2):
        return MoneyProbe(template, Verdict.REFUSE, named)
    plain = re.fullmatch(r"\d+(\.\d{1,2})?", text) is not None
    return MoneyProbe(template, Verdict.ACCEPT if plain else Verdict.EITHER, named)


MONEY_SPELLINGS = (
    # over two decimals, in every spelling
    "100000.0000000000000000000000001",
    "100000.00000000000000000000000000000000000001",
    "100000.001",
    "99999.999",
    "0.001",
    "1.00001e2",
    "10000000.001e-2",
    "1E-3",
    "999999999999.999",
    "0.0000000000000000000000000000000000001",
    # out of range, too many digits
    "1e13",
    "1e400",
    "1" + "0" * 30,
    "1000000000000.001",
    "0",
    "0.00",
    "-0.00",
    "-1",
    # not a JSON number
    "1_000",
    "0x10",
    '"100"',
    "NaN",
    "Infinity",
    # exact amounts of at most two decimals, spelled oddly
    "1e5",
    "1E+5",
    "100000.000",
    "100000.0000000000000000000000000",
    "12345e-2",
    "9.999999e4",
    "0.5e1",
    # plain money
    "100000",
    "100000.00",
    "99999.99",
    "0.01",
    "1000000000000",
)
DUPLICATE_KEYS = (
    MoneyProbe(
        '{"age": {age}, "value": 100, "value": 200000}',
        Verdict.REFUSE,
        ((None, Decimal(100)), (None, Decimal(200000))),
    ),
    MoneyProbe(
        '{"age": {age}, "value": 200000, "value": 100}',
        Verdict.REFUSE,
        ((None, Decimal(200000)), (None, Decimal(100))),
    ),
    MoneyProbe(
        '{"age": {age}, "age": 17, "value": 100}',
        Verdict.REFUSE,
        ((None, Decimal(100)), (17, Decimal(100))),
    ),
    MoneyProbe('{"value": 5, "age": {age}, "value": 5}', Verdict.REFUSE, ((None, Decimal(5)),)),
)


def money_probes() -> list[MoneyProbe]:
    return [_money(text) for text in MONEY_SPELLINGS] + list(DUPLICATE_KEYS)


def run_money(port: int, probe: MoneyProbe, age: int, tally: ProbeTally) -> None:
    """POST one spelling and check the answer against its verdict; record what was told."""
    raw = probe.render(age)
    try:
        answer = exchange(port, framed(raw))
    except OSError as exc:
        tally.problem(f"money {probe.template}: could not connect ({exc!r})")
        return
    tally.sent += 1
    status = answer.statuses[0] if answer.statuses else None
    ticket = answer.ticket()
    outcome = UNKNOWN if status is None else f"HTTP {status}"
    named = [(age if asked is None else asked, amount) for asked, amount in probe.named]
    if ticket is not None and named:
        last_age, last_value = named.pop()
        tally.ledger.accept(Accepted(ticket, last_age, last_value, time.monotonic()))
    for asked, amount in named:
        tally.ledger.attempt(asked, amount, outcome)
    allowed = {Verdict.REFUSE: (400,), Verdict.ACCEPT: (202,), Verdict.EITHER: (202, 400)}
    if status not in allowed[probe.verdict]:
        tally.problem(f"money {probe.template} {probe.verdict.value}, got {status or 'no answer'}")


# --- crowds: idle connections and slow clients ---------------------------------------------


@dataclass
class CrowdReport:
    """How the API treated the crowd, and how many threads it ran meanwhile."""

    idle_opened: int = 0
    idle_refused: int = 0
    idle_closed_by_server: int = 0
    slow: int = 0
    slow_cut_off: int = 0
    slow_longest_held: float = 0.0
    max_threads: int = 0

    def describe(self) -> str:
        return (
            f"crowd: {self.idle_opened} idle connections held ({self.idle_refused} refused, "
            f"{self.idle_closed_by_server} closed by the server); {self.slow} slow clients, "
            f"{self.slow_cut_off} cut off by the server, the longest held "
            f"{self.slow_longest_held:.0f}s; API threads at most {self.max_threads}"
        )


class Crowd:
    """Idle connections that never send a byte, and clients that send one byte a second.

    The slow clients' requests are long enough never to complete while the scenario runs,
    so none of them can store a ticket; what matters is whether the API keeps answering the
    good traffic and how many threads the crowd costs it.
    """

    def __init__(self, port: int, idle: int, slow: int, api_pid: int | None) -> None:
        self._port = port
        self._idle_count, self._slow_count = idle, slow
        self._api_pid = api_pid
        self._idle: list[socket.socket] = []
        self._slow: dict[socket.socket, tuple[float, Iterator[int]]] = {}
        self._stop = threading.Event()
        self.report = CrowdReport(slow=slow)
        self._threads = [
            threading.Thread(target=self._drip, name="slow-clients", daemon=True),
            threading.Thread(target=self._sample, name="api-threads", daemon=True),
        ]

    def open(self) -> None:
        """Open every connection, then start the slow clients and the thread sampler."""
        for _ in range(self._idle_count):
            try:
                self._idle.append(_connect(self._port))
            except OSError:
                self.report.idle_refused += 1
        self.report.idle_opened = len(self._idle)
        padding = b"X-Pad: " + b"a" * 4096 + b"\r\n"
        request = post_head() + padding + framed(body(HIDDEN_AGE, HIDDEN_VALUE))
        for _ in range(self._slow_count):
            with contextlib.suppress(OSError):
                sock = _connect(self._port)
                self._slow[sock] = (time.monotonic(), iter(request))
        for thread in self._threads:
            thread.start()

    def close(self) -> CrowdReport:
        """Stop, count what the server closed meanwhile, and close everything."""
        self._stop.set()
        for thread in self._threads:
            thread.join()
        self.report.idle_closed_by_server = sum(_closed_by_peer(s) for s in self._idle)
        now = time.monotonic()
        for opened, _ in self._slow.values():
            self.report.slow_longest_held = max(self.report.slow_longest_held, now - opened)
        for sock in [*self._idle, *self._slow]:
            sock.close()
        return self.report

    def _drip(self) -> None:
        while not self._stop.wait(1.0):
            for sock, (opened, remaining) in list(self._slow.items()):
                byte = next(remaining, None)
                try:
                    if byte is None or _closed_by_peer(sock):
                        raise ConnectionResetError
                    sock.send(bytes((byte,)))
                except OSError:
                    held = time.monotonic() - opened
                    self.report.slow_longest_held = max(self.report.slow_longest_held, held)
                    self.report.slow_cut_off += 1
                    sock.close()
                    del self._slow[sock]

    def _sample(self) -> None:
        while not self._stop.wait(SAMPLE_SECONDS):
            count = thread_count(self._api_pid)
            self.report.max_threads = max(self.report.max_threads, count)


def _connect(port: int) -> socket.socket:
    """A blocking connection: a Python-level timeout would poll before every MSG_DONTWAIT recv."""
    sock = socket.create_connection(("127.0.0.1", port), CONNECT_SECONDS)
    sock.settimeout(None)
    return sock


def _closed_by_peer(sock: socket.socket) -> bool:
    """True if the server closed or reset the connection (EOF or an answer is waiting)."""
    try:
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) is not None
    except BlockingIOError:
        return False
    except OSError:
        return True


def thread_count(pid: int | None) -> int:
    """Threads of a live process (0 if it is gone)."""
    if pid is None:
        return 0
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    found = re.search(r"^Threads:\s+(\d+)", status, re.MULTILINE)
    return int(found.group(1)) if found else 0


def cycle_ages() -> Iterator[int]:
    """Ages no good request asks for, so what a hostile request stored is known for its own."""
    while True:
        yield from HOSTILE_AGES
