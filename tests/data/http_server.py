#!/usr/bin/python3
"""A plain HTTP server for the reload tests: Python's http.server on the socket pmond passes as fd 3 (systemd's
LISTEN_FDS protocol), or on a port it binds itself (argv[1]) without one. It says READY=1 over NOTIFY_SOCKET
when it has one, and on SIGTERM it finishes the request in hand and exits (what a reload's old copy must do).
It answers every GET with its pid; with --never-ready it never says READY=1. Standard library only: it runs
under any python3."""

from __future__ import annotations

import http.server
import os
import signal
import socket
import sys
import time

stopping = False


def event(what: str) -> None:
    """One line per event for tests that check the order of copies (HTTP_SERVER_EVENTS names the file)."""
    path = os.environ.get("HTTP_SERVER_EVENTS")
    if path:
        with open(path, "a") as fh:
            fh.write(f"{what} {os.getpid()} {time.monotonic_ns()}\n")


def stop(*_: object) -> None:
    global stopping
    stopping = True
    event("term")


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def do_GET(self) -> None:  # noqa: N802
        body = f"{os.getpid()}\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def main() -> None:
    signal.signal(signal.SIGTERM, stop)
    if os.environ.get("LISTEN_FDS") == "1" and os.environ.get("LISTEN_PID") == str(os.getpid()):
        server = http.server.HTTPServer(("", 0), Handler, bind_and_activate=False)
        server.socket.close()
        server.socket = socket.socket(fileno=3)
    else:
        server = http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler)
    server.timeout = 0.05  # how soon a SIGTERM is noticed between requests
    # Instances share the socket: a wake-up another copy wins would leave a blocking accept() stuck (and deaf to
    # SIGTERM) until the next connection. Non-blocking, a lost race is just another turn of the loop.
    server.socket.setblocking(False)
    where = os.environ.get("NOTIFY_SOCKET", "")
    if where and "--never-ready" not in sys.argv:  # a copy that never gets ready (reload failure tests)
        note = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        event("ready")  # before saying so: the line is then surely older than anything pmond does about it
        note.sendto(b"READY=1\nSTATUS=serving", "\0" + where[1:] if where.startswith("@") else where)
    while not stopping:
        server.handle_request()


if __name__ == "__main__":
    main()
