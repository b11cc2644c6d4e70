#!/usr/bin/env node
// A zero-downtime HTTP server for pmon3 (docs/reload.md), Node standard library only.
//
//   pmon3 exec ./server.js --name web --listen tcp:127.0.0.1:8080 --ready notify
//   pmon3 reload web
//
// It serves the socket pmond passes as fd 3 (systemd's LISTEN_FDS protocol; run by hand, it binds PORT itself).
// Node cannot send on an AF_UNIX datagram socket, so once it serves it says READY=1 through `systemd-notify
// --ready`, a child process: pmond accepts messages from any process of the program's own tree. Without
// systemd-notify, drop `--ready notify` and use `--ready log:^listening` (the line printed below).
// On SIGTERM it stops accepting, finishes the requests in hand and exits.
"use strict";
const http = require("http");
const { execFile } = require("child_process");

const server = http.createServer((req, res) => {
  res.end(`hello from pid ${process.pid}\n`);
});

const inherited = process.env.LISTEN_PID === String(process.pid) && Number(process.env.LISTEN_FDS) >= 1;
server.listen(inherited ? { fd: 3 } : { port: Number(process.env.PORT || 8080), host: "127.0.0.1" }, () => {
  console.log(`listening (pid ${process.pid})`);
  if (process.env.NOTIFY_SOCKET) {
    execFile("systemd-notify", ["--ready", "--status=serving"], (err) => {
      if (err) console.error(`READY=1 not sent: ${err.message}`);
    });
  }
});

process.on("SIGTERM", () => server.close(() => process.exit(0)));
