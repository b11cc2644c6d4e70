// A PM2 ecosystem file as PM2's documentation writes them (pm2 init; "Ecosystem File" reference).
const path = require("path");

const common = {
  min_uptime: "10s",
  max_restarts: 10,
  kill_timeout: 5000,
};

module.exports = {
  apps: [
    {
      name: "api",
      script: "./server.js",
      args: "--port 3000 --greeting 'hello world'",
      node_args: "--max-old-space-size=512",
      instances: 4,
      exec_mode: "cluster",
      max_memory_restart: "300M",
      watch: false,
      out_file: "./api-out.log",
      error_file: "./api-err.log",
      restart_delay: 4000,
      env: {
        NODE_ENV: "development",
        PORT: 3000,
      },
      env_production: {
        NODE_ENV: "production",
        PORT: 80,
      },
      ...common,
    },
    {
      name: "worker",
      script: "worker.py",
      cwd: path.join(__dirname, "jobs"),
      interpreter: "python3",
      interpreter_args: "-X dev",
      args: ["--queue", "default", "--concurrency", 2],
      autorestart: false,
      exp_backoff_restart_delay: 100,
      log_file: path.join(__dirname, "jobs", "worker.log"),
      cron_restart: "0 3 * * *",
      env: {
        QUEUE: "default",
      },
      env_production: {
        QUEUE: "critical",
      },
    },
    {
      name: "ticker",
      script: "/bin/sleep",
      args: "3600",
      interpreter: "none",
      stop_exit_codes: [0, 3],
      namespace: "batch",
      user: "nobody",
      wait_ready: true,
      listen_timeout: 8000,
    },
  ],

  deploy: {
    production: {
      user: "deploy",
      host: "203.0.113.10",
      ref: "origin/main",
      repo: "git@example.com:acme/app.git",
      path: "/srv/app",
      "post-deploy": "npm ci && pm2 reload ecosystem.config.js --env production",
    },
  },
};
