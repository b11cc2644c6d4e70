#!/usr/bin/env python3
"""Plot a benches/scale.py result: restart latency, pmond RSS, `ls` time and cold start against N.

    python benches/plot_scale.py benches/results/scale-<timestamp>.json benches/results/scale.png

Run by scale.py --save with the bench's own venv (benches/.venv-peer), where matplotlib is installed: pmon3's
environment never gets it.
"""

from __future__ import annotations

import json
import statistics
import sys

import matplotlib

matplotlib.use("Agg")  # no display here
import matplotlib.pyplot as plt  # noqa: E402


def main(src: str, dst: str) -> int:
    data = json.load(open(src))
    pts = sorted(data["points"], key=lambda p: p["n"])
    if not pts:
        print("no points to plot", file=sys.stderr)
        return 1
    ns = [p["n"] for p in pts]

    def med(key: str) -> list[float]:
        return [statistics.median(p[key]) if p[key] else float("nan") for p in pts]

    def p90(key: str) -> list[float]:
        out = []
        for p in pts:
            v = sorted(p[key])
            out.append(v[min(len(v) - 1, int(len(v) * 0.9))] if v else float("nan"))
        return out

    fig, axes = plt.subplots(2, 2, figsize=(11, 7.5))
    panels = [
        (
            axes[0][0],
            "restart: kill -> new child's main() (ms)",
            [("median", med("restart_ms")), ("p90", p90("restart_ms"))],
        ),
        (
            axes[0][1],
            "pmond RSS (MiB)",
            [
                ("all running", [p["rss_kib"] / 1024 for p in pts]),
                ("of it anon", [p.get("rss_anon_kib", 0) / 1024 for p in pts]),
            ],
        ),
        (
            axes[1][0],
            "`pmon3 ls` (ms, median)",
            [("ls --json", med("ls_json_ms")), ("ls (piped table)", med("ls_table_ms"))],
        ),
        (
            axes[1][1],
            "cold start from a process config (s)",
            [("pmon3: last child running", [p["cold_start_s"] for p in pts])]
            + (
                [("C reference", [p["cref_cold_start_s"] for p in pts])]
                if all("cref_cold_start_s" in p for p in pts)
                else []
            ),
        ),
    ]
    for ax, title, series in panels:
        for label, ys in series:
            ax.plot(ns, ys, marker="o", label=label)
        ax.set_xscale("log")
        ax.set_xlabel("processes (N)")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
        ax.set_ylim(bottom=0)
    host = data.get("host", {})
    fig.suptitle(f"pmond at N processes ({data.get('date', '')}, {host.get('cpus', '?')} CPUs)")
    fig.tight_layout()
    fig.savefig(dst, dpi=110)
    print(f"wrote {dst}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
