"""Deadlines, the connection cap and bounded threads, against a running gateway.

The module's gateway gives a request head and a body 2 s each, an idle keep-alive connection
2 s and a client that does not read 2 s; its deadlines are checked every quarter second.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
import time

import pytest

from tests.gateway.client import NoAnswer, RawClient
from tests.gateway.conftest import start_gateway

DEADLINE = 2.0
SLACK = 3.0  # scheduling on a busy 2-core machine; a missing deadline takes minutes, not this
WORKERS = 64


def _trickle_until_answered(client: RawClient, data: bytes, every: float, limit: float) -> float:
    """Send one byte every `every` seconds until the server answers; seconds taken."""
    started = time.monotonic()
    for byte in data:
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            client.send(bytes([byte]))
        ready, _, _ = select.select([client.sock], [], [], every)
        if ready or time.monotonic() - started > limit:
            break
    return time.monotonic() - started


def test_a_head_sent_a_byte_at_a_time_is_cut_off_at_its_deadline(gateway):
    client = gateway.client(timeout=DEADLINE + SLACK)
    head = b"GET /echo HTTP/1.1\r\nHost: x\r\nX-A: " + b"a" * 1000
    took = _trickle_until_answered(client, head, every=0.2, limit=DEADLINE + SLACK)
    status, body = client.json()
    assert (status, body["code"]) == (408, "REQUEST_TIMEOUT")
    assert DEADLINE - 0.5 <= took <= DEADLINE + SLACK
    assert client.closed()


def test_a_body_sent_a_byte_at_a_time_is_cut_off_at_its_deadline(gateway):
    client = gateway.client(timeout=DEADLINE + SLACK)
    client.send(
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 500\r\n\r\n"
    )
    took = _trickle_until_answered(client, b"x" * 500, every=0.2, limit=DEADLINE + SLACK)
    status, body = client.json()
    assert (status, body["code"]) == (408, "REQUEST_TIMEOUT")
    assert DEADLINE - 0.5 <= took <= DEADLINE + SLACK
    assert client.closed()


def test_a_connection_that_never_sends_is_closed_at_the_head_deadline(gateway):
    client = gateway.client(timeout=DEADLINE + SLACK)
    started = time.monotonic()
    assert client.closed()
    assert DEADLINE - 0.5 <= time.monotonic() - started <= DEADLINE + SLACK


def test_an_idle_keep_alive_connection_is_closed_after_the_idle_limit(gateway):
    client = gateway.client(timeout=DEADLINE + SLACK)
    client.send(b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n")
    assert client.response()[0] == 200
    started = time.monotonic()
    assert client.closed()
    assert DEADLINE - 0.5 <= time.monotonic() - started <= DEADLINE + SLACK


def test_empty_lines_do_not_keep_a_connection_alive(gateway):
    client = gateway.client(timeout=DEADLINE + SLACK)
    took = _trickle_until_answered(client, b"\r\n" * 100, every=0.2, limit=DEADLINE + SLACK)
    assert took <= DEADLINE + SLACK and client.closed()


def test_a_client_that_never_reads_its_answers_is_dropped(gateway):
    client = gateway.client()
    client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    client.sock.setblocking(False)
    request = (
        b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n"
        b"Content-Length: 16000\r\n\r\n" + b"x" * 16000
    )
    sent, started = 0, time.monotonic()
    with contextlib.suppress(BlockingIOError):
        while time.monotonic() - started < 1.0:  # until the server stops reading
            sent += client.sock.send(request)
    assert sent > 10 * len(request)  # far more answers than the socket buffers hold
    other = gateway.client()
    other.send(b"GET /items/1 HTTP/1.1\r\nHost: x\r\n\r\n")
    assert other.json() == (200, {"item": "1"})  # the stuck writer holds no one else up
    stuck = client.sock.getsockname()
    assert stuck in gateway.peers()
    deadline = time.monotonic() + DEADLINE + SLACK
    while stuck in gateway.peers() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert stuck not in gateway.peers()  # the server closed its end
    client.close()


def test_over_the_connection_cap_a_client_gets_503_with_retry_after(dispatcher):
    running = start_gateway("--dispatcher", dispatcher, "--max-connections", "20")
    try:
        held = [running.client() for _ in range(20)]
        for client in held:  # each is admitted and answered
            client.send(b"GET /items/1 HTTP/1.1\r\nHost: x\r\n\r\n")
            assert client.response()[0] == 200
        refused = running.client()
        refused.send(b"GET /items/1 HTTP/1.1\r\nHost: x\r\n\r\n")
        status, headers, body = refused.response()
        assert (status, headers["retry-after"], headers["connection"]) == (503, "1", "close")
        assert b'"code": "TOO_MANY_CONNECTIONS"' in body
        assert refused.closed()
        held.pop().close()
        deadline = time.monotonic() + 5
        while True:  # once the server has seen the close, there is room again
            fresh = running.client()
            fresh.send(b"GET /items/2 HTTP/1.1\r\nHost: x\r\n\r\n")
            status, _ = fresh.json()
            if status == 200 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert status == 200
    finally:
        running.stop()


def test_a_pool_smaller_than_its_clients_answers_them_all(dispatcher):
    running = start_gateway("--dispatcher", dispatcher, "--workers", "2")
    try:
        clients = [running.client() for _ in range(6)]
        started = time.monotonic()
        for client in clients:
            client.send(b"GET /sleep?seconds=0.2 HTTP/1.1\r\nHost: x\r\n\r\n")
        assert [client.json() for client in clients] == [(200, {"slept": 0.2})] * 6
        assert time.monotonic() - started >= 0.6 - 0.05  # 6 views of 0.2 s on 2 threads
    finally:
        running.stop()


def _open(address: tuple[str, int], count: int) -> list[socket.socket]:
    sockets = []
    for _ in range(count):
        sock = socket.create_connection(address, timeout=10)
        sock.setblocking(False)
        sockets.append(sock)
    return sockets


def _answered(sock: socket.socket) -> bytes | None:
    try:
        return sock.recv(4096)
    except BlockingIOError:
        return None
    except ConnectionResetError:
        return b""


@pytest.mark.slow
def test_1500_clients_sending_a_byte_a_second_hold_no_thread_each(dispatcher, capsys):
    """1,500 slowloris clients against a cap of 1,000: 500 get 503 at once, the others hold
    a connection (no thread) until their head deadline, and the threads stay the pool's."""
    running = start_gateway("--dispatcher", dispatcher, "--head-timeout", "4", "--linger", "0.5")
    try:
        idle_threads, idle_rss = running.threads(), running.rss_mb()
        sockets = _open(running.address, 1500)
        head = b"GET /echo HTTP/1.1\r\nHost: x\r\nX-A: "
        answers: dict[int, bytes] = {}
        peak_threads, peak_rss = 0, 0.0
        for second in range(7):
            for index, sock in enumerate(sockets):
                if index not in answers:
                    with contextlib.suppress(OSError):
                        sock.send(head[second : second + 1] or b"a")
            time.sleep(1.0)
            for index, sock in enumerate(sockets):
                if index not in answers and (data := _answered(sock)) is not None:
                    answers[index] = data
            peak_threads = max(peak_threads, running.threads())
            peak_rss = max(peak_rss, running.rss_mb())
        refused = [d for d in answers.values() if d.startswith(b"HTTP/1.1 503")]
        timed_out = [d for d in answers.values() if d.startswith(b"HTTP/1.1 408")]
        with capsys.disabled():
            print(
                f"\n[{dispatcher}] 1,500 slow clients: threads {idle_threads} idle, "
                f"{peak_threads} at peak; RSS {idle_rss:.1f} MB idle, {peak_rss:.1f} MB at peak; "
                f"{len(refused)} refused (503), {len(timed_out)} timed out (408)"
            )
        assert peak_threads <= WORKERS + 8
        assert len(refused) == 500
        assert len(timed_out) == 1000
        assert peak_rss - idle_rss < 100
        for sock in sockets:
            sock.close()
    finally:
        running.stop()


def test_slow_clients_do_not_slow_a_normal_one(gateway):
    sockets = _open(gateway.address, 300)
    try:
        for sock in sockets:
            sock.send(b"GET /echo HTTP/1.1\r\n")
        client = gateway.client()
        for _ in range(20):
            started = time.monotonic()
            client.send(b"GET /items/3 HTTP/1.1\r\nHost: x\r\n\r\n")
            assert client.json() == (200, {"item": "3"})
            assert time.monotonic() - started < 0.5
    finally:
        for sock in sockets:
            sock.close()


def test_an_error_answer_is_read_by_a_client_still_sending(gateway):
    """After a 413 the client goes on sending its body; it reads the 413, not a reset."""
    for _ in range(5):
        client = gateway.client()
        client.send(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 16385\r\n\r\n")

        def keep_sending(sock: socket.socket = client.sock) -> None:
            with contextlib.suppress(OSError):
                for _ in range(64):
                    sock.sendall(b"x" * 16384)

        sender = threading.Thread(target=keep_sending)
        sender.start()
        time.sleep(0.3)  # the answer and the server's close come while data still flows
        try:
            status, _ = client.json()
        except NoAnswer as exc:
            pytest.fail(f"the 413 was lost: {exc}")
        finally:
            sender.join()
        assert status == 413
        client.close()
