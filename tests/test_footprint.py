"""What the agent carries: `eduedge run` imports neither the city's nor the simulator's code, nor the libraries
only some configurations (or other commands) use; those load when they are used. bench/footprint.py measures
the memory this saves; this test keeps it from creeping back.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

# Heavy (several MB each, bench/README.md) and needed only by some configurations or commands.
NOT_AT_START = ("eduedge.cloud", "eduedge.simulator", "jsonschema", "dns", "httpcore", "cryptography",
                "eduedge.collectors.broadband.engine", "eduedge.collectors.service_probes", "prometheus_client",
                "typer.rich_utils", "markdown_it", "pygments")


def _modules(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code) + "\nimport sys, json\n"
                          "print(json.dumps(sorted(sys.modules)))"], capture_output=True, text=True, check=True)
    return set(json.loads(out.stdout.splitlines()[-1]))


def _heavy(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if any(m == h or m.startswith(h + ".") for h in NOT_AT_START))


def test_eduedge_run_loads_no_city_simulator_or_optional_libraries() -> None:
    mods = _modules("""
        from eduedge import cli
        cli.app_for(["run"])
        import eduedge.agent.daemon
    """)
    assert "eduedge.agent.daemon" in mods and "paho.mqtt.client" in mods
    assert _heavy(mods) == []


def test_a_command_line_loads_its_own_command_alone_and_draws_no_help_until_asked() -> None:
    mods = _modules("""
        import typer
        from eduedge import cli
        command = typer.main.get_command(cli.app_for(["run"]))
        cli.localise(command, cli.root_context(command))
    """)
    assert sorted(m for m in mods if m.startswith("eduedge.agent.cli.") and not m.split(".")[-1].startswith("_")) \
        == ["eduedge.agent.cli.run"]
    assert _heavy(mods) == []


def test_help_drawn_after_the_start_is_still_in_the_readers_language() -> None:
    """typer's panel titles and `[default: ...]` are put in its help module when it loads, not before."""
    out = subprocess.run([sys.executable, "-c", "from eduedge.cli import main; main()", "run", "-h"],
                         capture_output=True, text=True, env={**os.environ, "LANG": "zh_CN.UTF-8", "COLUMNS": "200"})
    assert out.returncode == 0, out.stderr
    assert "选项" in out.stdout and "[默认：/etc/eduedge/eduedge.yaml]" in out.stdout, out.stdout


@pytest.mark.skipif(not __import__("importlib.util").util.find_spec("snmpsim"), reason="needs the [sim] extra")
def test_the_extra_groups_are_still_there_for_help_and_their_own_commands() -> None:
    for argv in ([], ["--help"], ["sim"]):
        mods = _modules(f"""
            from eduedge import cli
            cli.app_for({argv!r})
        """)
        assert "eduedge.simulator.cli" in mods, argv


def test_a_broadband_collector_imports_the_engine_only_for_a_test(tmp_path: object) -> None:
    mods = _modules(f"""
        from eduedge.collectors.broadband.collector import BroadbandCollector
        from eduedge.collectors.broadband.config import BroadbandConfig
        c = BroadbandCollector.from_config(BroadbandConfig(enabled=True, server="127.0.0.1:9"), "gw",
                                           {str(tmp_path)!r}, "UTC")
        c.capacity()
        import sys
        assert "eduedge.collectors.broadband.engine" not in sys.modules
        c.engine()
    """)
    assert "eduedge.collectors.broadband.engine" in mods


def test_the_contract_loads_jsonschema_with_its_first_check() -> None:
    mods = _modules("""
        from eduedge.agent import contract
        import sys
        assert "jsonschema" not in sys.modules
        assert contract.command_problems("rebirth", {"schema": {"name": "cmd", "version": 1},
                                                    "request_id": "r", "args": {}}) == []
    """)
    assert "jsonschema" in mods


def test_give_back_returns_the_holes_a_burst_left_to_the_system() -> None:
    out = subprocess.run([sys.executable, "-c", textwrap.dedent("""
        import psutil
        from eduedge.core.memory import give_back
        rss = lambda: psutil.Process().memory_info().rss / 2**20
        burst = [bytes(4096) for _ in range(20_000)]      # 80 MB in malloc's heap (not CPython's pools)
        kept = burst[::50]                                # a few survivors pin the heap's top
        del burst
        before = rss()
        give_back()
        print(before - rss())
    """)], capture_output=True, text=True, check=True)
    assert float(out.stdout) > 40, out.stdout        # MB returned of the ~78 MB freed


def test_big_blocks_go_back_to_the_system_after_a_bigger_one_was_freed() -> None:
    """glibc raises its mmap threshold to the size of a big block freed: without `fix_mmap_threshold`, a poll's
    later 256 KiB buffers come from the heap (where their holes stay) instead of from the system."""
    code = textwrap.dedent("""
        import ctypes, sys
        from eduedge.core.memory import fix_mmap_threshold
        class Info(ctypes.Structure):
            _fields_ = [(n, ctypes.c_size_t) for n in
                        "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()]
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = Info
        if sys.argv[1] == "fixed":
            assert fix_mmap_threshold()
        big = bytearray(4 << 20)
        del big
        blocks = [bytearray(256 * 1024) for _ in range(8)]
        print(libc.mallinfo2().hblks)
    """)
    mapped = {how: int(subprocess.run([sys.executable, "-c", code, how], capture_output=True, text=True,
                                      check=True).stdout) for how in ("glibc", "fixed")}
    assert mapped["glibc"] < 8 <= mapped["fixed"], mapped


@pytest.mark.parametrize("n", [3, 700, 4000])      # 4000 samples pass the 256 KiB cap: batched item by item
def test_add_samples_writes_the_messages_add_items_writes(tmp_path: Path, n: int) -> None:
    from eduedge.agent.envelope import Envelope
    from eduedge.agent.outbox import Outbox
    from eduedge.core.samples import Sample

    samples = [Sample(1.8e9 + i, f"sw-{i % 7}", "if.in_bps", i * 12.5, "bit/s",
                      {"interface": f"GigabitEthernet0/0/{i}", "if_alias": "教室 3"}) for i in range(n)]
    payloads = []
    for name, add in (("fast", lambda b: b.add_samples(samples)),
                      ("items", lambda b: b.add_items("metrics", [s.to_dict() for s in samples]))):
        box = Outbox(tmp_path / f"{name}.sqlite", Envelope("s", "c", "gw", "0.1.0", "0" * 32), max_bytes=2**30,
                     now=lambda: 1.8e9)
        add(box)
        msgs = [json.loads(p) for (p,) in box.db.execute("SELECT payload FROM outbox ORDER BY seq")]
        for m in msgs:          # each outbox numbers its messages with ids and an epoch of its own
            del m["id"], m["agent"]["epoch"]
        payloads.append(msgs)
        box.close()
    assert payloads[0] == payloads[1] and len(payloads[0]) == (1 if n <= 700 else 3)
