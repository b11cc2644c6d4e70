// The HTTP server of the reload bench (benches/README.md), the same file under pmon3 and under PM2.
// Node standard library only. It answers every request with its pid.
//
// Under pmon3 (`--listen tcp:...`): the socket pmond holds arrives as fd 3 (systemd's LISTEN_FDS protocol)
// and `server.listen({fd: 3})` serves it. Once listening it says READY=1: node's dgram cannot send on an
// AF_UNIX socket, so it runs `systemd-notify --ready` (python3 when that is missing), a child of this
// process, which pmond accepts as a message from this copy's tree.
// Under PM2 (cluster mode): `server.listen(PORT)`; PM2's reload waits for the worker's 'listening' event,
// emitted at the same point.
// SIGTERM (pmond) and SIGINT (PM2): stop accepting, finish the requests in hand, exit 0; with LINGER_MS, not
// before that many ms after the signal (the bench's variant for PM2's cluster master, see benches/README.md).
"use strict";
const http = require("http");
const { execFile } = require("child_process");

const server = http.createServer((req, res) => {
  const body = `${process.pid}\n`;
  res.writeHead(200, { "Content-Length": Buffer.byteLength(body), "Content-Type": "text/plain" });
  res.end(body);
});

function notifyReady() {
  const where = process.env.NOTIFY_SOCKET;
  if (!where) return;
  execFile("systemd-notify", ["--ready"], (err) => {
    if (err && err.code === "ENOENT") {
      const py = "import os,socket;w=os.environ['NOTIFY_SOCKET'];" +
        "socket.socket(socket.AF_UNIX,socket.SOCK_DGRAM).sendto(b'READY=1','\\0'+w[1:] if w[0]=='@' else w)";
      execFile("python3", ["-c", py], (err2) => { if (err2) console.error(`READY=1 not sent: ${err2}`); });
    } else if (err) {
      console.error(`systemd-notify failed: ${err}`);
    }
  });
}

const inherited = process.env.LISTEN_FDS === "1" && process.env.LISTEN_PID === String(process.pid);
server.listen(inherited ? { fd: 3 } : { port: Number(process.env.PORT), host: "127.0.0.1" }, notifyReady);

function stop() {
  const linger = new Promise((resolve) => setTimeout(resolve, Number(process.env.LINGER_MS || 0)));
  server.close(() => linger.then(() => process.exit(0)));
}
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
