"""A local HTTP file server for download tests: Range requests, cut-off transfers, server errors."""

from __future__ import annotations

import gzip
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FileServer:
    """Serves `files` (name -> bytes) at http://127.0.0.1:<port>/<name>.

    cut_after[name] = n: the next response for `name` announces the whole length but sends only
    n bytes and drops the connection. fail_first[name] = k: the next k requests get HTTP 503.
    ranges=False: Range headers are ignored (a full 200 response every time). lie_about_ranges:
    a Range request gets a 206 reply whose part starts at byte 0 (and says so in its Content-Range).
    whole_body_on_ranges: a Range request gets a 206 reply with the right Content-Range but the whole
    file as its body (and a Content-Length that counts it).
    announce_length=False: replies carry no Content-Length (the body ends when the connection closes).
    compress=True: a client that accepts gzip gets the body gzip-compressed (Content-Encoding: gzip,
    Content-Length of the compressed bytes), as GitHub's raw file server does with text files.
    """

    def __init__(
        self,
        files: dict[str, bytes],
        ranges: bool = True,
        lie_about_ranges: bool = False,
        whole_body_on_ranges: bool = False,
        announce_length: bool = True,
        compress: bool = False,
    ):
        self.files = files
        self.ranges = ranges
        self.lie_about_ranges = lie_about_ranges
        self.whole_body_on_ranges = whole_body_on_ranges
        self.announce_length = announce_length
        self.compress = compress
        self.cut_after: dict[str, int] = {}
        self.fail_first: dict[str, int] = {}
        self.requests: list[tuple[str, str | None]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                name = self.path.lstrip("/")
                server.requests.append((name, self.headers.get("Range")))
                if server.fail_first.get(name, 0) > 0:
                    server.fail_first[name] -= 1
                    self.send_error(503)
                    return
                if name not in server.files:
                    self.send_error(404)
                    return
                data = server.files[name]
                start = 0
                match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
                if match and server.ranges:
                    start = 0 if server.lie_about_ranges else int(match.group(1))
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                else:
                    self.send_response(200)
                body = data if server.whole_body_on_ranges else data[start:]
                if server.compress and "gzip" in (self.headers.get("Accept-Encoding") or ""):
                    body = gzip.compress(body)
                    self.send_header("Content-Encoding", "gzip")
                if server.announce_length:
                    self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                cut = server.cut_after.pop(name, None)
                self.wfile.write(body if cut is None else body[:cut])
                if cut is not None:
                    self.wfile.flush()
                    self.close_connection = True

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> FileServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
