"""A TCP proxy a test can cut and restore: a database outage without stopping the shared server.

Two ways to cut, because they fail differently:

- ``refuse``: the server is down. Open connections are reset, new ones are reset at once.
  The client learns immediately.
- ``blackhole``: the network drops everything. Open connections stay open and new ones are
  accepted, but no byte gets through in either direction, and nothing is ever closed. Only the
  client's own timeouts end its wait: the harder case.

``restore`` lets new connections through again and closes the ones held silent (their streams
lost bytes, so no client could use them anyway).
"""

from __future__ import annotations

import socket
import struct
import threading
from dataclasses import dataclass
from types import TracebackType

MODES = ("refuse", "blackhole")
OPEN = "open"
CHUNK = 65536
ACCEPT_POLL_SECONDS = 0.1
UPSTREAM_CONNECT_SECONDS = 2.0


def _reset(sock: socket.socket | None) -> None:
    """Close with RST (no FIN): what a client sees from a crashed server.

    ``shutdown`` first, because closing a socket another thread is blocked on does not wake
    that thread (and does not really close the socket) on Linux."""
    if sock is None:
        return
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already closed by the peer or by another thread
    sock.close()


@dataclass(eq=False)
class _Link:
    """One client connection and, unless it arrived during a blackhole, its upstream."""

    client: socket.socket
    upstream: socket.socket | None
    silent: bool = False  # bytes are read and dropped, nothing is forwarded or closed


class TcpProxy:
    """Listens on a free 127.0.0.1 port and forwards every connection to ``target``."""

    def __init__(self, target: tuple[str, int] = ("127.0.0.1", 3306)) -> None:
        self.target = target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(ACCEPT_POLL_SECONDS)
        self.port: int = self._listener.getsockname()[1]
        self._mode = OPEN
        self._links: set[_Link] = set()
        self._forwarded: list[int] = []  # client ports of connections forwarded since restore
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._acceptor = threading.Thread(target=self._accept_loop, daemon=True)

    def __enter__(self) -> TcpProxy:
        self._acceptor.start()
        return self

    def __exit__(
        self,
        _type: type[BaseException] | None,
        _value: BaseException | None,
        _traceback: TracebackType | None,
    ) -> None:
        self.close()

    def forwarded_since_restore(self) -> list[int]:
        """The client-side ports of the connections forwarded since the last ``restore``:
        which processes reconnected can be told from them."""
        with self._lock:
            return list(self._forwarded)

    def cut(self, mode: str) -> None:
        """Start an outage of the given kind (see the module docstring)."""
        assert mode in MODES, mode
        with self._lock:
            self._mode = mode
            for link in list(self._links):
                if mode == "refuse":
                    self._drop(link)
                else:
                    link.silent = True
                    _reset(link.upstream)  # the server frees the session; the client hears nothing

    def restore(self) -> None:
        """End the outage: forward new connections, close those held silent."""
        with self._lock:
            self._mode = OPEN
            self._forwarded.clear()
            for link in [link for link in self._links if link.silent]:
                self._drop(link)

    def close(self) -> None:
        self._stopped.set()
        if self._acceptor.is_alive():
            self._acceptor.join()
        self._listener.close()
        with self._lock:
            for link in list(self._links):
                self._drop(link)

    def _accept_loop(self) -> None:
        while not self._stopped.is_set():
            try:
                client, _address = self._listener.accept()
            except TimeoutError:
                continue
            with self._lock:  # so a cut cannot slip between the check and the registration
                self._admit(client)

    def _admit(self, client: socket.socket) -> None:
        if self._mode == "refuse":
            _reset(client)
            return
        upstream = None
        if self._mode == OPEN:
            try:
                upstream = socket.create_connection(self.target, UPSTREAM_CONNECT_SECONDS)
            except OSError:
                _reset(client)
                return
            upstream.settimeout(None)
            self._forwarded.append(client.getpeername()[1])
        link = _Link(client, upstream, silent=self._mode == "blackhole")
        self._links.add(link)
        self._start_pump(link, client, upstream)
        if upstream is not None:
            self._start_pump(link, upstream, client)

    def _start_pump(self, link: _Link, source: socket.socket, sink: socket.socket | None) -> None:
        threading.Thread(target=self._pump, args=(link, source, sink), daemon=True).start()

    def _pump(self, link: _Link, source: socket.socket, sink: socket.socket | None) -> None:
        """Copy one direction until either side closes; while silent, read and drop."""
        try:
            while data := source.recv(CHUNK):
                if not link.silent and sink is not None:
                    sink.sendall(data)
        except OSError:
            pass  # reset, or shut down by cut/restore/close
        if not link.silent:
            with self._lock:
                self._drop(link)

    def _drop(self, link: _Link) -> None:
        """Reset both sides of a link (idempotent; the caller holds the lock)."""
        _reset(link.client)
        _reset(link.upstream)
        self._links.discard(link)
