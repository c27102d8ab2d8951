"""The Collector interface and its registry: the daemon runs whatever is registered, naming none."""

from __future__ import annotations

import ast
import asyncio
from concurrent.futures import Future
from pathlib import Path

import pytest

import eduedge.agent.jobs  # noqa: F401  (registers the agent's factories)
from eduedge.agent import contract
from eduedge.agent.config import AgentConfig
from eduedge.agent.daemon.delivery import Delivery
from eduedge.agent.daemon.scheduler import Job
from eduedge.agent.daemon.wiring import Collectors
from eduedge.agent.envelope import Envelope
from eduedge.agent.outbox import Outbox
from eduedge.agent.samplestore import SampleStore
from eduedge.collectors import base
from eduedge.collectors.base import Collected, Collector, DeviceAnswer, register, registered
from eduedge.core.samples import Sample

DAEMON = Path(base.__file__).parents[1] / "agent" / "daemon"


def test_every_collector_of_the_agent_is_registered_in_the_order_the_jobs_are_listed() -> None:
    assert list(registered()) == ["snmp", "host", "discovery", "reachability", "compliance", "broadband",
                                  "live-class"]


def test_a_kind_is_registered_once() -> None:
    def other(cfg: object, sh: object) -> list[Collector]:
        return []
    with pytest.raises(ValueError, match="'host' is registered twice"):
        register("host")(other)


def test_the_daemon_names_no_collector() -> None:
    kinds = set(registered()) | {"broadband:tick", "live-class:loads", "traps"}
    for path in DAEMON.glob("*.py"):
        strings = {n.value for n in ast.walk(ast.parse(path.read_text())) if isinstance(n, ast.Constant)
                   and isinstance(n.value, str)}
        assert not strings & kinds, f"{path.name} names {sorted(strings & kinds)}"
        assert not [n for n in strings if n.startswith("snmp:")], path.name


class Counter(Collector):
    """A collector made up for the test: what the interface promises, without any real collector."""

    kind = "counter"
    answers = True

    async def collect(self, asked: bool = False) -> Collected:
        s = [Sample(1.0, "box-1", "count.total", 3, "count"), Sample(1.0, "box-1", "count.secret", 1, "count")]
        return Collected(s, answer=DeviceAnswer("box-1", 1.0, True, "box-1.lan", [], {"model": "X"}),
                         summary={"asked": asked})

    def keeps(self, sample: Sample) -> bool:
        return sample.metric != "count.secret"

    def after(self, collected: Collected) -> list[Sample]:
        return [Sample(1.0, "box-1", "count.seen_secrets", sum(s.metric == "count.secret"
                                                               for s in collected.samples), "count")]


class Broken(Counter):
    async def collect(self, asked: bool = False) -> Collected:
        raise OSError("no route to host")


def _keep(tmp_path: Path, c: Collector) -> tuple[Job, Delivery, tuple[int, str | None]]:
    """One run of `c` as the scheduler makes it: collect, then keep what it found."""
    outbox = Outbox(tmp_path / "outbox.db", Envelope("s1", "c1", "a1", "0", "boot"), max_bytes=2**24)
    d = Delivery(SampleStore(":memory:"), outbox)
    job = Job.of(c)
    fut: Future[Collected] = Future()
    try:
        fut.set_result(asyncio.run(c.collect(asked=True)))
    except OSError as e:
        fut.set_exception(e)
    return job, d, d.keep(job, fut)


def test_what_a_collector_does_not_keep_is_neither_stored_nor_sent_but_its_after_hook_sees_it(
        tmp_path: Path) -> None:
    job, d, (n, error) = _keep(tmp_path, Counter("counter", 60.0, "box-1"))
    assert (n, error, job.last_summary) == (2, None, {"asked": True})
    assert [s.metric for s in d.store.latest("count.total")] == ["count.total"]
    assert d.store.latest("count.secret") == []
    assert [s.value for s in d.store.latest("count.seen_secrets")] == [1]
    assert d.inventory_due.is_set()              # a new identity: the inventory goes out again


def test_a_device_that_gives_no_data_is_an_event_and_its_error_names_it(tmp_path: Path) -> None:
    _, d, (n, error) = _keep(tmp_path, Broken("counter", 60.0, "box-1"))
    assert n == 0 and error == "counter: OSError: no route to host"
    events = [e for r in d.outbox.take(10) if r.kind == "events" for e in contract.decode(r.payload)["events"]]
    assert [(e["kind"], e["device"]) for e in events] == [("device.unreachable", "box-1")]
    assert error in events[0]["message"]


def test_the_wiring_builds_the_registered_jobs_of_a_configuration(tmp_path: Path) -> None:
    cfg = AgentConfig.model_validate({"school": {"id": "s1", "name": "S", "city": "c1", "type": "primary"},
                                      "agent": {"data_dir": str(tmp_path)}, "standards": {"packs": ["moe-2019"]},
                                      "reachability": {"enabled": True}})
    loop = asyncio.new_event_loop()
    try:
        cols = Collectors(cfg, loop, SampleStore(":memory:"))
        assert list(cols.jobs) == ["host", "reachability", "compliance"]
        assert {j.name: j.collector for j in cols.jobs.values()} == {
            "host": "host", "reachability": "reachability", "compliance": "compliance"}
        again = Collectors(cfg, loop, SampleStore(":memory:"), previous=cols)
        assert again.jobs["host"].source.host is cols.jobs["host"].source.host    # type: ignore[union-attr]
    finally:
        loop.close()
