"""The HTTP server: stdlib ThreadingHTTPServer speaking HTTP/1.1 with keep-alive.

A hand-rolled server (instead of an ASGI app) is deliberate: fault injection needs the raw
socket to reset a connection (SO_LINGER 0, so the client sees ECONNRESET), to promise a
Content-Length and then hang up halfway, and to dribble a body byte by byte. Routing lives in
`app.App`; this module only moves bytes.
"""

from __future__ import annotations

import contextlib
import email.utils
import io
import logging
import socket
import struct
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from .app import App, not_found_page, split_target
from .responses import Response

log = logging.getLogger(__name__)
_MAX_BODY = 10 * 1024 * 1024
# Linux's SO_TIMESTAMPNS (= SCM_TIMESTAMPNS); Python's socket module does not name it.
_SO_TIMESTAMPNS = 35
_TIMESPEC = struct.Struct("qq")
# A request path -> the app that serves it and the path within that app (None: no app, the
# HTML 404). One emulator serves every path itself; a `fleet.Fleet` mounts several.
Route = Callable[[str], tuple[App | None, str]]


class _ArrivalReader(io.RawIOBase):
    """The connection's bytes, with the time the kernel received the first bytes of each
    request (SO_TIMESTAMPNS): when a request arrived, not when a busy emulator's handler
    thread got round to reading it. The emulator is one Python process serving both APIs;
    under load its threads wait for the GIL, and stamps taken by them bunch up where the
    requests did not (the request log would then judge a client by the emulator's delays).
    Where the kernel gives no stamp, the time of the read stands in."""

    def __init__(self, conn: socket.socket) -> None:
        self._conn = conn
        self._stamped = True
        try:
            conn.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
        except OSError:
            self._stamped = False
        self.arrival: float | None = None  # of the request being read; None: the next read's

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        if not self._stamped:
            n = self._conn.recv_into(buffer)
            if n and self.arrival is None:
                self.arrival = time.time()
            return n
        data, ancillary, _, _ = self._conn.recvmsg(len(buffer), socket.CMSG_SPACE(16))
        n = len(data)
        buffer[:n] = data
        if n and self.arrival is None:
            self.arrival = time.time()
            for level, kind, payload in ancillary:
                if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS:
                    seconds, nanoseconds = _TIMESPEC.unpack(payload[: _TIMESPEC.size])
                    self.arrival = seconds + nanoseconds / 1e9
        return n

    def take_arrival(self) -> float:
        """The arrival of the request just read; the next read starts the next request."""
        arrival, self.arrival = self.arrival, None
        return time.time() if arrival is None else arrival


class EmulatorHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self, address: tuple[str, int], app: App | None = None, route: Route | None = None
    ) -> None:
        if (app is None) == (route is None):
            raise ValueError("give the server either one app or a route")
        self.app = app
        self.route: Route = route or (lambda path: (app, path))
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def track(self, conn: socket.socket, active: bool) -> None:
        with self._connections_lock:
            if active:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)

    def close_connections(self) -> None:
        """Hang up idle keep-alive connections so a stopped emulator serves nothing more."""
        with self._connections_lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "CentraEmulator/1.0"
    sys_version = ""
    timeout = 300  # idle keep-alive connections are closed after this many seconds
    server: EmulatorHTTPServer

    def version_string(self) -> str:
        return self.server_version

    def date_time_string(self, timestamp: float | None = None) -> str:
        """The `Date` header shows the *store* clock, as a real server's Date matches the
        clock its data is stamped with; clients may use it as Centra's "now". A request no
        store serves (or one not parsed yet, under several stores) gets the wall clock."""
        app = getattr(self, "routed_app", None) or self.server.app
        if timestamp is None:
            timestamp = time.time() if app is None else app.store.now
        return email.utils.formatdate(timestamp, usegmt=True)

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in separate writes; without TCP_NODELAY, Nagle plus the
        # client's delayed ACK adds ~40 ms to every keep-alive response.
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.arrivals = _ArrivalReader(self.connection)
        self.rfile = io.BufferedReader(self.arrivals)
        self.server.track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.track(self.connection, False)

    def log_message(self, format: str, *args: object) -> None:
        log.debug("%s %s", self.address_string(), format % args)

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_PUT(self) -> None:
        self._serve("PUT")

    def do_DELETE(self) -> None:
        self._serve("DELETE")

    def do_PATCH(self) -> None:
        self._serve("PATCH")

    # request ------------------------------------------------------------------------------
    def _read_body(self) -> bytes | None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        raw = self.headers.get("Content-Length")
        if raw is None:
            return b""
        try:
            length = int(raw)
        except ValueError:
            return None
        if length < 0 or length > _MAX_BODY:
            return None
        return self.rfile.read(length)

    def _serve(self, method: str) -> None:
        full_path, query = split_target(self.path)
        app, path = self.server.route(full_path)
        self.routed_app = app  # for the Date header
        try:
            body = self._read_body()
        except (ValueError, OSError):
            body = None
        arrival = self.arrivals.take_arrival()  # after the body: its reads are this request's
        if body is None:
            self.close_connection = True
            self._send(Response(400, b'{"error":"unreadable request body"}'))
            return
        try:
            if app is None:
                self._send(not_found_page(full_path))
                return
            area = app.area(path)
            if area in ("order", "shop"):
                app.request_log.arrived(area, arrival)
                fault = app.before_api()
                if fault == "reset":
                    self._reset()
                    return
                if fault in ("429", "500", "503"):
                    app.count(area, f"fault {fault}")
                    self._send(app.fault_response(fault))
                    return
                response = app.handle_api(area, method, path, query, self.headers, body)
                if fault == "truncate":
                    self._send_truncated(response)
                elif fault == "slow":
                    self._send_slow(response, app.faults.slow_ms)
                else:
                    self._send(response)
            elif area == "admin":
                self._send(app.handle_admin(method, path, body))
            else:
                self._send(app.not_found_html(full_path))
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception:  # the emulator must answer, not hang, even when it has a bug
            log.exception("emulator failed on %s %s", method, self.path)
            self.close_connection = True
            self._send(Response(500, b'{"status":"no","msg":"emulator internal error"}'))

    # response -----------------------------------------------------------------------------
    def _headers(self, response: Response) -> None:
        self.send_response(response.status)
        self.send_header("Content-Type", response.content_type)
        self.send_header("Content-Length", str(len(response.body)))
        for name, value in response.headers:
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()

    def _send(self, response: Response) -> None:
        self._headers(response)
        self.wfile.write(response.body)

    def _send_truncated(self, response: Response) -> None:
        """Promise the full Content-Length, send half of the body, then close (FIN)."""
        self.close_connection = True
        self._headers(response)
        self.wfile.write(response.body[: max(1, len(response.body) // 2)])
        self.wfile.flush()
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_WR)

    def _send_slow(self, response: Response, slow_ms: int) -> None:
        """Send the whole response, but dribble the body over `slow_ms` milliseconds."""
        self._headers(response)
        body = response.body
        pieces = 20
        step = max(1, len(body) // pieces)
        pause = slow_ms / 1000 / pieces
        for start in range(0, len(body), step):
            self.wfile.write(body[start : start + step])
            self.wfile.flush()
            time.sleep(pause)

    def _reset(self) -> None:
        """Abort the connection: SO_LINGER 0 turns close() into a TCP RST."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        # The fd is only really closed once the buffered reader (a makefile) is closed too.
        with contextlib.suppress(OSError):
            self.rfile.close()
        self.connection.close()
        # BaseHTTPRequestHandler flushes wfile after every request; give it something harmless.
        self.wfile = io.BytesIO()


def serve_in_thread(server: EmulatorHTTPServer, name: str) -> threading.Thread:
    """Serve `server` from a daemon thread (what Emulator and Fleet start)."""
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.1}, name=name, daemon=True
    )
    thread.start()
    return thread


def shut_down(server: EmulatorHTTPServer | None, thread: threading.Thread | None) -> None:
    """Stop serving, drop open connections, close the socket and join the thread."""
    if server is not None:
        server.shutdown()
        server.close_connections()
        server.server_close()
    if thread is not None:
        thread.join(5)
