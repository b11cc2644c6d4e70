"""The metrics text without a daemon: the format prometheus_client reads, and a render that lets the loop in."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from pmon3 import config
from pmon3.daemon.metrics import RENDER_CHUNK, Metrics
from pmon3.errors import ConfigError
from pmon3.states import Status
from pmon3.store import Summary

parser = pytest.importorskip("prometheus_client.parser")


def fake(n: int, users: str = "root") -> Metrics:
    rows = [Summary(i, 0 if i % 2 else 1000, f"p{i}", Status.STOPPED, 0, 0.0, None, None, 0) for i in range(1, n + 1)]
    rows[0] = rows[0]._replace(name='odd"name\\x\x1b')  # not a name pmond accepts; the format must hold anyway
    store: Any = SimpleNamespace(summaries=lambda owner: [r for r in rows if owner is None or r.owner == owner])
    authz: Any = SimpleNamespace(own_uid=0, owner_name=lambda uid: {0: "root", 1000: "alice"}[uid])
    history = SimpleNamespace(reasons={1: {"exit": 2}}, ended_cpu={})
    trees = SimpleNamespace(base=None, mode="session")
    sup: Any = SimpleNamespace(runtimes={}, is_alive=lambda i: False, history=history, trees=trees)
    cfg = config.from_mapping({"metrics": {"users": users}}, "/nonexistent", "system")
    return Metrics(cfg, authz, sup, store)


def test_the_text_parses_and_escapes_label_values():
    text = asyncio.run(fake(3).render())
    families = {f.name: f for f in parser.text_string_to_metric_families(text)}
    assert families["pmon3_process_exits"].type == "counter"
    names = {s.labels["name"] for s in families["pmon3_process_up"].samples}
    # root's only, by default; the control character arrives as its escape, the backslash doubled by text.escape
    assert names == {'odd"name\\\\x\\x1b', "p3"}
    assert "\x1b" not in text


def test_users_all_shows_everyones():
    text = asyncio.run(fake(4, users="all").render())
    owners = {
        s.labels["owner"] for f in parser.text_string_to_metric_families(text) for s in f.samples if "owner" in s.labels
    }
    assert owners == {"root", "alice"}


def test_a_large_render_lets_other_callbacks_run_in_between():
    async def main() -> tuple[bool, str]:
        m = fake(RENDER_CHUNK * 5, users="all")
        task = asyncio.ensure_future(m.render())
        seen: list[bool] = []
        asyncio.get_running_loop().call_soon(lambda: seen.append(task.done()))
        text = await task
        return seen[0], text

    done_when_looked, text = asyncio.run(main())
    assert done_when_looked is False  # the loop ran something else before the render was over
    assert text.count("pmon3_process_status{") == RENDER_CHUNK * 5 * len(Status)


def test_config_keys(tmp_path):
    path = str(tmp_path / "c.yml")
    cfg = config.from_mapping({"metrics": {"listen": "[::1]:9465", "users": "all"}}, path, "system")
    assert (cfg.metrics_listen, cfg.metrics_users) == ("[::1]:9465", "all")
    assert config.check_listen("[::1]:9465", "k") == ("::1", 9465)
    assert config.check_listen("/run/pmond-metrics.sock", "k") == ("/run/pmond-metrics.sock", 0)
    defaults = config.from_mapping({}, path, "system")
    assert (defaults.metrics_listen, defaults.metrics_users) == ("", "root")
    for raw, fragment in (
        ({"metrics": {"listen": "9465"}}, "metrics.listen: expected HOST:PORT"),
        ({"metrics": {"listen": "host:99999"}}, "metrics.listen"),
        ({"metrics": {"users": "some"}}, "metrics.users: expected one of root, all"),
    ):
        with pytest.raises(ConfigError, match=fragment):
            config.from_mapping(raw, path, "system")
