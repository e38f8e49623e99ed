"""Readiness dispatch for the HTTP server: a fixed pool of threads serves every connection.

No thread belongs to a connection: a connection that is idle or slow costs a registration
and a few kilobytes, never a thread. Two strategies, the same contract:

- `EpollDispatcher` (Linux): leader/follower. Every pool thread waits in `epoll_wait` on one
  shared epoll object; connections are registered with `EPOLLONESHOT`, so one readiness event
  wakes one thread, which then owns the connection: it reads, parses, calls the app, writes and
  re-arms the registration itself. No hand-off between threads on the way of a request, which
  matters because the app's views block on MySQL and Redis. A timer thread enforces deadlines.
- `SelectorDispatcher` (any platform; kqueue on macOS): one thread waits in a `selectors`
  selector and hands each ready connection to the pool through a queue; the pool thread hands
  it back to be registered again: two more thread wake-ups each time a connection goes quiet.

With either, a thread that has just answered stays with that connection for a few
milliseconds (`HotSlots`), so a busy keep-alive client costs what a thread of its own would.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import queue
import select
import selectors
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

LOGGER = logging.getLogger(__name__)
if hasattr(select, "epoll"):
    _READ = select.EPOLLIN | select.EPOLLONESHOT
    _WRITE = select.EPOLLOUT | select.EPOLLONESHOT
    _LISTEN = select.EPOLLIN | select.EPOLLONESHOT
    _WAKE = select.EPOLLIN  # level-triggered and never read: it wakes every thread
else:
    _READ = _WRITE = _LISTEN = _WAKE = 0
ACCEPT_PAUSE_SECONDS = 0.1  # out of file descriptors: stop accepting this long
JOIN_SECONDS = 5.0  # at shutdown, how long to wait for a thread still inside a request


class Interest(enum.Enum):
    """What a connection waits for next."""

    READ = "read"
    WRITE = "write"
    CLOSED = "closed"  # it closed itself; forget it


class Channel(Protocol):
    """One client connection, as a dispatcher handles it.

    A dispatcher calls `service` only from the thread that owns the channel at that moment
    (the one that received its readiness event), holding `lock`; `service` never raises, and
    blocks on the socket only when asked to wait (and then no longer than a few milliseconds).
    `expire` may be called on a channel nobody owns.
    """

    fd: int
    sock: socket.socket
    lock: threading.Lock
    deadline: float  # time.monotonic() after which it is to be expired
    hot: bool  # its last service answered a request and left nothing half-read

    @property
    def writing(self) -> bool:
        """It waits to write (not to read)."""
        ...

    def service(self, wait: bool = False) -> Interest:
        """With `wait`, a read may block for the channel's short receive timeout."""
        ...

    def expire(self) -> None: ...


class Acceptor(Protocol):
    """The listening side: hands out new channels and keeps the table of open ones."""

    listener: socket.socket
    channels: dict[int, Channel]  # by file descriptor
    resolution: float  # seconds between deadline checks

    def accept(self) -> tuple[list[tuple[Channel, Interest]], bool]:
        """Channels accepted now, and whether file descriptors ran out."""
        ...


class Dispatcher(Protocol):
    """Runs an acceptor's connections until stopped; `run` blocks, `stop` returns at once.

    A dispatcher runs once: `run` releases what it holds when it returns.
    """

    def run(self, acceptor: Acceptor) -> None: ...

    def stop(self) -> None: ...


def default_dispatcher(workers: int = 64) -> Dispatcher:
    """epoll's leader/follower where the platform has it, else the portable selector loop."""
    if hasattr(select, "epoll"):
        return EpollDispatcher(workers)
    return SelectorDispatcher(workers)


class HotSlots:
    """How many pool threads may stay with the connection they have just answered.

    A thread that answered a request waits on that same connection, briefly, for the next
    one, as a thread per connection would: a busy keep-alive client then costs one read and
    one write per request, with no registration, no wake-up of another thread and no GIL
    hand-off. A reserve of the pool never does, so it always serves the other connections.
    """

    def __init__(self, workers: int) -> None:
        self._free = workers - max(1, workers // 8)
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            if self._free <= 0:
                return False
            self._free -= 1
            return True

    def give(self) -> None:
        with self._lock:
            self._free += 1


def serve_channel(channel: Channel, slots: HotSlots) -> Interest:
    """Service a ready channel, then stay with it while requests keep coming."""
    with channel.lock:
        interest = channel.service()
    if interest is not Interest.READ or not channel.hot or not slots.take():
        return interest
    try:
        while interest is Interest.READ and channel.hot:
            with channel.lock:
                interest = channel.service(wait=True)
    finally:
        slots.give()
    return interest


def _abandon(channel: Channel) -> None:
    """Close a channel no dispatcher watches: expired, its next service closes it."""
    with channel.lock:
        channel.expire()
        channel.service()


def _join(threads: list[threading.Thread]) -> None:
    """Wait for the pool, but not for ever: a thread may be stuck inside a view."""
    deadline = time.monotonic() + JOIN_SECONDS
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))


def _expired(acceptor: Acceptor, now: float) -> list[Channel]:
    return [channel for channel in list(acceptor.channels.values()) if channel.deadline <= now]


class EpollDispatcher:
    """Leader/follower over one epoll object with one-shot registrations (Linux)."""

    def __init__(self, workers: int = 64) -> None:
        if workers < 1:
            raise ValueError("a dispatcher needs at least one worker thread")
        self.workers = workers
        self._stop = threading.Event()
        self._wake_r, self._wake_w = socket.socketpair()
        self._epoll: select.epoll | None = None
        self._resume_accept_at = 0.0
        self._slots = HotSlots(workers)

    def run(self, acceptor: Acceptor) -> None:
        epoll = self._epoll = select.epoll()
        try:
            epoll.register(acceptor.listener.fileno(), _LISTEN)
            epoll.register(self._wake_r.fileno(), _WAKE)
            threads = [
                threading.Thread(target=self._work, args=(acceptor,), name=f"http-{n}")
                for n in range(self.workers)
            ]
            timer = threading.Thread(target=self._watch, args=(acceptor,), name="http-timer")
            threads.append(timer)
            for thread in threads:
                thread.daemon = True
                thread.start()
            self._stop.wait()
            _join(threads)
        finally:
            epoll.close()
            self._wake_r.close()
            self._wake_w.close()

    def stop(self) -> None:
        self._stop.set()
        with contextlib.suppress(OSError):  # already closed: the loop has ended
            self._wake_w.send(b"x")

    def _work(self, acceptor: Acceptor) -> None:
        while not self._stop.is_set():
            try:
                self._serve(acceptor)
            except Exception:  # a pool thread must outlive anything one event does
                if not self._stop.is_set():
                    LOGGER.exception("an HTTP worker thread failed; it carries on")

    def _serve(self, acceptor: Acceptor) -> None:
        assert self._epoll is not None
        poll, modify = self._epoll.poll, self._epoll.modify
        listen_fd, wake_fd = acceptor.listener.fileno(), self._wake_r.fileno()
        channels = acceptor.channels
        while True:
            events = poll(-1, 1)  # one event per wake-up: the other threads take the rest
            if not events:
                continue
            fd = events[0][0]
            if fd == wake_fd:
                return
            if fd == listen_fd:
                self._accept(acceptor)
                continue
            channel = channels.get(fd)
            if channel is None:
                continue
            interest = serve_channel(channel, self._slots)
            if interest is Interest.READ:
                modify(fd, _READ)
            elif interest is Interest.WRITE:
                modify(fd, _WRITE)

    def _accept(self, acceptor: Acceptor) -> None:
        assert self._epoll is not None
        exhausted = False
        try:
            accepted, exhausted = acceptor.accept()
            for channel, interest in accepted:
                if interest is not Interest.CLOSED:
                    mask = _READ if interest is Interest.READ else _WRITE
                    try:
                        self._epoll.register(channel.fd, mask)
                    except OSError:
                        LOGGER.exception("cannot watch a new connection; it is closed")
                        _abandon(channel)
        finally:  # whatever happened, the listener is armed again
            if exhausted:  # the timer re-arms it after a pause
                self._resume_accept_at = time.monotonic() + ACCEPT_PAUSE_SECONDS
            else:
                self._epoll.modify(acceptor.listener.fileno(), _LISTEN)

    def _watch(self, acceptor: Acceptor) -> None:
        """The timer: wake each parked channel whose deadline passed.

        Only a channel's owner closes its socket, so a descriptor is never reused while an
        event for it may be on its way. To hand an expired channel to an owner, the timer
        marks it and shuts its reading side, which makes it readable (EOF); one waiting to
        write is shut both ways, which epoll reports as a hang-up whatever the mask. A thread
        then takes it.
        """
        assert self._epoll is not None
        while not self._stop.wait(acceptor.resolution):
            now = time.monotonic()
            for channel in _expired(acceptor, now):
                if not channel.lock.acquire(blocking=False):
                    continue  # a thread is serving it; it sets a new deadline
                try:
                    if channel.deadline <= now:
                        channel.expire()
                        how = socket.SHUT_RDWR if channel.writing else socket.SHUT_RD
                        channel.sock.shutdown(how)
                except OSError:
                    pass  # already shut or closed: it is on its way out
                finally:
                    channel.lock.release()
            if self._resume_accept_at and now >= self._resume_accept_at:
                self._resume_accept_at = 0.0
                self._epoll.modify(acceptor.listener.fileno(), _LISTEN)


class SelectorDispatcher:
    """One selector thread hands ready channels to a pool of threads (portable)."""

    def __init__(
        self,
        workers: int = 64,
        selector: Callable[[], selectors.BaseSelector] = selectors.DefaultSelector,
    ) -> None:
        if workers < 1:
            raise ValueError("a dispatcher needs at least one worker thread")
        self.workers = workers
        self._selector_factory = selector
        self._stop = threading.Event()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)
        self._jobs: queue.SimpleQueue[Channel | None] = queue.SimpleQueue()
        self._served: deque[tuple[Channel, Interest]] = deque()
        self._slots = HotSlots(workers)

    def stop(self) -> None:
        self._stop.set()
        self._nudge()

    def _nudge(self) -> None:
        with contextlib.suppress(OSError):  # full (a wake-up is pending anyway) or closed
            self._wake_w.send(b"x")

    def run(self, acceptor: Acceptor) -> None:
        selector = self._selector_factory()
        threads = [
            threading.Thread(target=self._work, name=f"http-{n}", daemon=True)
            for n in range(self.workers)
        ]
        for thread in threads:
            thread.start()
        try:
            selector.register(acceptor.listener, selectors.EVENT_READ, None)
            selector.register(self._wake_r, selectors.EVENT_READ, None)
            self._loop(acceptor, selector)
        finally:
            for _ in threads:
                self._jobs.put(None)
            _join(threads)
            selector.close()
            self._wake_r.close()
            self._wake_w.close()

    def _loop(self, acceptor: Acceptor, selector: selectors.BaseSelector) -> None:
        parked: dict[int, Channel] = {}
        accept_paused_until = 0.0
        checked = time.monotonic()
        while not self._stop.is_set():
            for key, _ in selector.select(acceptor.resolution):
                if key.fileobj is acceptor.listener:
                    if self._accept(acceptor, selector, parked):
                        selector.unregister(acceptor.listener)
                        accept_paused_until = time.monotonic() + ACCEPT_PAUSE_SECONDS
                elif key.fileobj is self._wake_r:
                    self._drain_wake()
                else:
                    self._dispatch(key.data, selector, parked)
            while self._served:
                channel, interest = self._served.popleft()
                self._park(channel, interest, selector, parked)
            now = time.monotonic()
            if accept_paused_until and now >= accept_paused_until:
                accept_paused_until = 0.0
                selector.register(acceptor.listener, selectors.EVENT_READ, None)
            if now - checked >= acceptor.resolution:
                checked = now
                for channel in [c for c in parked.values() if c.deadline <= now]:
                    channel.expire()
                    self._dispatch(channel, selector, parked)

    def _accept(
        self, acceptor: Acceptor, selector: selectors.BaseSelector, parked: dict[int, Channel]
    ) -> bool:
        accepted, exhausted = acceptor.accept()
        for channel, interest in accepted:
            self._park(channel, interest, selector, parked)
        return exhausted

    def _dispatch(
        self, channel: Channel, selector: selectors.BaseSelector, parked: dict[int, Channel]
    ) -> None:
        selector.unregister(channel.sock)
        del parked[channel.fd]
        self._jobs.put(channel)

    def _park(
        self,
        channel: Channel,
        interest: Interest,
        selector: selectors.BaseSelector,
        parked: dict[int, Channel],
    ) -> None:
        if interest is Interest.CLOSED:
            return
        events = selectors.EVENT_READ if interest is Interest.READ else selectors.EVENT_WRITE
        try:
            selector.register(channel.sock, events, channel)
        except (OSError, ValueError):
            LOGGER.exception("cannot watch a connection; it is closed")
            _abandon(channel)
            return
        parked[channel.fd] = channel

    def _drain_wake(self) -> None:
        try:
            while self._wake_r.recv(4096):
                pass
        except BlockingIOError:
            pass

    def _work(self) -> None:
        while (channel := self._jobs.get()) is not None:
            interest = serve_channel(channel, self._slots)
            self._served.append((channel, interest))
            self._nudge()
