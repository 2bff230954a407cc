"""A small HTTP proxy between our ``stripe`` client and the fake Stripe, switchable to fail.

Test infrastructure for the Stripe fault tests: the proxy listens on a free port, the test
points ``stripe.api_base`` at it, and :meth:`StripeProxy.fail` makes the next requests (or all
of them, until :meth:`StripeProxy.heal`) fail the way Stripe can from the outside:

- ``refuse``: nothing listens on the port (the listener is closed): connection refused;
- ``error``: the proxy answers 500 itself without forwarding, as a load balancer in front of
  Stripe does (nothing reaches Stripe, nothing is saved under the idempotency key);
- ``hang``: the request is read and never answered (the client's timeout decides);
- ``lose_answer``: the request is forwarded, Stripe runs it and answers, and the proxy drops
  the connection instead of passing the answer on (the write happened; the answer is lost).

Every request that reaches the proxy is recorded (method, path, ``Idempotency-Key``, what
was done with it), so a test can tell how often our client tried and with which key.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from dataclasses import dataclass
from urllib.parse import urlsplit

MODES = ("pass", "refuse", "error", "hang", "lose_answer")
_ERROR_BODY = (
    b'{"error": {"type": "api_error", "message": "An unknown error occurred (proxy fault)"}}'
)


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    idempotency_key: str
    outcome: str  # a mode: what the proxy did with it


def _read_request(conn: socket.socket) -> bytes | None:
    """One HTTP request (head and Content-Length body), or None when the client closed."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            return None
        body += chunk
    return head + b"\r\n\r\n" + body


def _header(head: bytes, name: str) -> str:
    for line in head.split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == name.lower().encode():
            return value.strip().decode(errors="replace")
    return ""


def _with_connection_close(request: bytes) -> bytes:
    head, _, body = request.partition(b"\r\n\r\n")
    lines = [
        line
        for line in head.split(b"\r\n")
        if line.partition(b":")[0].strip().lower() not in (b"connection", b"keep-alive")
    ]
    lines.append(b"Connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


class StripeProxy:
    """See the module docstring. ``upstream`` is the fake's base URL."""

    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        self._mode = "pass"
        self._remaining: int | None = None  # requests left in the mode; None: until heal()
        self._method = ""  # only requests of this method fail ("": any)
        self._path = ""  # only requests under this path fail
        self._healed = threading.Event()
        self._stopped = False
        self._listener: socket.socket | None = None
        self.port = 0
        self._listen()
        self.url = f"http://127.0.0.1:{self.port}"

    # --- control ---------------------------------------------------------------------------

    def fail(
        self, mode: str, *, count: int | None = None, method: str = "", path: str = ""
    ) -> None:
        """Fail the next ``count`` requests (all until :meth:`heal` when None) as ``mode``;
        with ``method`` and/or ``path``, only requests of that method and under that path (the
        others pass). ``refuse`` has none of these: the port stays closed until :meth:`heal`."""
        assert mode in MODES and mode != "pass", mode
        assert mode != "refuse" or (count is None and not path and not method)
        with self._lock:
            self._mode, self._remaining = mode, count
            self._method, self._path = method, path
            self._healed.clear()
        if mode == "refuse":
            self._close_listener()

    def heal(self) -> None:
        """Back to passing every request on (a hanging request is dropped unanswered)."""
        with self._lock:
            self._mode, self._remaining = "pass", None
            self._method, self._path = "", ""
            self._healed.set()
        if self._listener is None:
            self._listen()

    def stop(self) -> None:
        self._stopped = True
        self._healed.set()
        self._close_listener()

    def requests(self, method: str, path_prefix: str) -> list[Seen]:
        with self._lock:
            return [s for s in self.seen if s.method == method and s.path.startswith(path_prefix)]

    # --- serving ---------------------------------------------------------------------------

    def _listen(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def _close_listener(self) -> None:
        listener, self._listener = self._listener, None
        if listener is not None:
            with contextlib.suppress(OSError):
                listener.shutdown(socket.SHUT_RDWR)
            listener.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return  # closed: refuse, or stop
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _take_mode(self, method: str, path: str) -> str:
        with self._lock:
            mode = self._mode
            if mode == "pass" or not path.startswith(self._path):
                return "pass"
            if self._method and method != self._method:
                return "pass"
            if self._remaining is not None:
                self._remaining -= 1
                if self._remaining <= 0:
                    self._mode, self._remaining = "pass", None
            return mode

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(30)
            try:
                request = _read_request(conn)
            except OSError:
                return
            if request is None:
                return
            head = request.partition(b"\r\n\r\n")[0]
            request_line = head.split(b"\r\n")[0].decode(errors="replace")
            method, path, *_ = [*request_line.split(" "), "", ""]
            path = path.split("?")[0]
            mode = self._take_mode(method, path)
            with self._lock:
                self.seen.append(Seen(method, path, _header(head, "Idempotency-Key"), mode))
            if mode == "error":
                conn.sendall(
                    b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\n"
                    + f"Content-Length: {len(_ERROR_BODY)}\r\nConnection: close\r\n\r\n".encode()
                    + _ERROR_BODY
                )
                return
            if mode == "hang":
                self._healed.wait(timeout=60)
                return  # dropped unanswered
            answer = self._forward(_with_connection_close(request))
            if mode == "lose_answer" or answer is None:
                conn.shutdown(socket.SHUT_RDWR)
                return
            conn.sendall(answer)

    def _forward(self, request: bytes) -> bytes | None:
        try:
            with socket.create_connection(self.upstream, timeout=30) as upstream:
                upstream.sendall(request)
                chunks = []
                while chunk := upstream.recv(65536):
                    chunks.append(chunk)
                return b"".join(chunks)
        except OSError:
            return None
