#!/usr/bin/env python3
"""A zero-downtime HTTP server for pmon3 (docs/reload.md), standard library only.

    pmon3 exec ./server.py --name web --listen tcp:127.0.0.1:8080 --ready notify
    pmon3 reload web

It serves the socket pmond passes as fd 3 (systemd's LISTEN_FDS protocol; run by hand, it binds PORT itself),
says READY=1 on NOTIFY_SOCKET once it serves, and on SIGTERM stops accepting, finishes the requests in hand
and exits.
"""

from __future__ import annotations

import http.server
import os
import signal
import socket
import threading


def inherited_socket() -> socket.socket | None:
    """The first socket passed by pmond (or systemd), or None when there is none for this process."""
    if os.environ.get("LISTEN_PID") != str(os.getpid()) or int(os.environ.get("LISTEN_FDS", "0")) < 1:
        return None
    return socket.socket(fileno=3)  # family and type are read from the descriptor


def sd_notify(state: str) -> None:
    """Send READY=1, STATUS=..., WATCHDOG=1 ... to the service manager; nothing without NOTIFY_SOCKET."""
    where = os.environ.get("NOTIFY_SOCKET", "")
    if not where:
        return
    if where.startswith("@"):  # an abstract socket (pmond's are): a leading NUL byte in Python
        where = "\0" + where[1:]
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.sendto(state.encode(), where)


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        body = f"hello from pid {os.getpid()}\n".encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = False  # server_close() waits for the requests in hand


def main() -> None:
    sock = inherited_socket()
    if sock is None:
        server = Server(("127.0.0.1", int(os.environ.get("PORT", "8080"))), Handler)
    else:
        server = Server(sock.getsockname()[:2], Handler, bind_and_activate=False)
        server.socket.close()
        server.socket = sock
        # Instances share the socket and all wake up for a connection: a blocking accept() that loses the race
        # would sit there, deaf to SIGTERM, until the next connection. (O_NONBLOCK is a flag of the shared socket:
        # Node, Go and tokio set it too.)
        sock.setblocking(False)
    # SIGTERM: serve_forever() returns (shutdown() must run in another thread than serve_forever's)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    sd_notify("READY=1\nSTATUS=serving")
    server.serve_forever()
    server.server_close()  # closes our copy of the socket (pmond keeps its own), joins the request threads


if __name__ == "__main__":
    main()
