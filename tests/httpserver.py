"""A real, tiny HTTP file server for download tests (no internet needed).

It serves in-memory files on 127.0.0.1 at a free port from a background thread, supports
``Range``/``If-Range`` like a real static file server, records every request, and can be told to
break a response off part-way (to test resuming) or to ignore ``Range`` (to test the fallback).
"""

from __future__ import annotations

import hashlib
import re
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Hit:
    """One request the server received."""

    method: str
    path: str
    headers: dict[str, str]
    status: int = 0


@dataclass
class FileServer:
    """Serve ``files`` (URL path without the leading "/" -> bytes) over HTTP.

    Attributes
    ----------
    cut_after : dict
        ``name -> n``: the next GET of ``name`` sends only ``n`` body bytes (of a full
        Content-Length) and then drops the connection.  One-shot.
    ignore_range : bool
        Answer every GET with the whole file (status 200), like servers without range support.
    hits : list of Hit
        Every request, in order.
    """

    files: dict[str, bytes] = field(default_factory=dict)
    cut_after: dict[str, int] = field(default_factory=dict)
    ignore_range: bool = False
    hits: list[Hit] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/"

    def gets(self, name: str | None = None) -> list[Hit]:
        """The GET requests (for ``name`` only, when given)."""
        with self._lock:
            return [h for h in self.hits if h.method == "GET" and (name is None or h.path == "/" + name)]

    def start(self) -> FileServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FileServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def etag(data: bytes) -> str:
    return '"' + hashlib.md5(data).hexdigest() + '"'


def closed_port_url() -> str:
    """A URL on 127.0.0.1 at a port nobody listens on (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


def _make_handler(server: FileServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:  # keep pytest output clean
            pass

        def _record(self, status: int) -> None:
            with server._lock:
                server.hits.append(Hit(self.command, self.path, dict(self.headers.items()), status))

        def _send(self, status: int, headers: dict[str, str], body: bytes = b"", cut: int | None = None) -> None:
            self._record(status)
            self.send_response(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.send_header("Connection", "close")
            self.end_headers()
            if self.command == "GET" and body:
                self.wfile.write(body if cut is None else body[:cut])
                self.wfile.flush()
            self.close_connection = True

        def do_HEAD(self) -> None:
            self.do_GET()

        def do_GET(self) -> None:
            name = self.path.lstrip("/")
            data = server.files.get(name)
            if data is None:
                msg = b"not found"
                self._send(404, {"Content-Type": "text/plain", "Content-Length": str(len(msg))}, msg)
                return
            size, tag = len(data), etag(data)
            # pages (a folder's index, .html) as HTML, like a static server; everything else as bytes
            html = name.endswith("/") or name.endswith(".html")
            base = {"Content-Type": "text/html" if html else "application/octet-stream", "ETag": tag,
                    "Accept-Ranges": "bytes"}
            rng = self.headers.get("Range")
            if_range = self.headers.get("If-Range")
            use_range = rng is not None and not server.ignore_range and (if_range is None or if_range == tag)
            start, end = 0, size - 1
            status = 200
            if use_range:
                m = re.fullmatch(r"bytes=(\d+)-(\d*)", rng.strip())
                if m:
                    start = int(m[1])
                    end = min(int(m[2]), size - 1) if m[2] else size - 1
                    if start >= size:
                        self._send(416, {**base, "Content-Range": f"bytes */{size}", "Content-Length": "0"})
                        return
                    status = 206
                    base["Content-Range"] = f"bytes {start}-{end}/{size}"
            body = data[start : end + 1]
            cut = server.cut_after.pop(name, None) if self.command == "GET" else None
            self._send(status, {**base, "Content-Length": str(len(body))}, body, cut=cut)

    return Handler
