"""The `eduedge` command follows the conventions of its ecosystem: `--version`, one meaning per short flag
across every command (the city's and the simulator's included), `-c` is `--config` wherever there is a
configuration, and shell completion is on offer."""

from __future__ import annotations

import subprocess
import sys
from collections import defaultdict
from importlib.metadata import version
from pathlib import Path

import typer

from eduedge.cli import build

EDUEDGE = str(Path(sys.executable).with_name("eduedge"))


# typer carries its own copy of click (typer._click), so the tree is walked by what its parts have, not
# by click's classes.
def commands(cmd, path: tuple[str, ...] = ("eduedge",)):
    """Every command and group of the tree, with the words that call it."""
    yield path, cmd
    for name, sub in getattr(cmd, "commands", {}).items():
        yield from commands(sub, (*path, name))


def options(cmd):
    """(short flags, long flags) of each option, --help included."""
    ctx = cmd.make_context(cmd.name, [], resilient_parsing=True)
    for p in cmd.get_params(ctx):
        if p.param_type_name == "option":
            flags = [*p.opts, *p.secondary_opts]
            yield ([f for f in flags if not f.startswith("--")], [f for f in flags if f.startswith("--")])


def tree() -> list:
    return list(commands(typer.main.get_command(build())))


def test_the_tree_holds_every_group_so_the_checks_below_cover_them():
    names = {" ".join(path[1:]) for path, _ in tree()}
    assert {"walk", "poll", "profile match", "run", "diag", "speedtest", "probe", "config check",
            "cloud ingest", "cloud serve", "sim up", "sim fault", "demo"} <= names


def test_every_short_flag_has_one_meaning_across_all_commands():
    meaning: dict[str, dict[tuple[str, ...], list[str]]] = defaultdict(lambda: defaultdict(list))
    for path, cmd in tree():
        for shorts, longs in options(cmd):
            for s in shorts:
                meaning[s][tuple(longs)].append(" ".join(path))
    clashes = {s: dict(m) for s, m in meaning.items() if len(m) > 1}
    assert not clashes, f"short flags with more than one meaning: {clashes}"
    assert set(meaning["-c"]) == {("--config",)}
    assert set(meaning["-h"]) == {("--help",)}


def test_c_is_config_in_every_command_that_takes_a_configuration():
    missing = [" ".join(path) for path, cmd in tree() for shorts, longs in options(cmd)
               if "--config" in longs and "-c" not in shorts]
    assert not missing, f"--config without -c in: {missing}"
    with_config = {" ".join(path[1:]) for path, cmd in tree() for _, longs in options(cmd) if "--config" in longs}
    assert {"walk", "poll", "profile match", "speedtest", "diag", "cloud judge"} <= with_config


def test_version_prints_the_installed_version():
    out = subprocess.run([EDUEDGE, "--version"], capture_output=True, text=True, timeout=60)
    assert (out.returncode, out.stdout, out.stderr) == (0, f"eduedge {version('eduedge')}\n", "")


def test_shell_completion_is_on_offer_and_completes_every_group():
    root = {long for _, longs in options(typer.main.get_command(build())) for long in longs}
    assert {"--install-completion", "--show-completion", "--version"} <= root
    # What bash's completion function asks: the words so far, and which one is being completed.
    env = {"_EDUEDGE_COMPLETE": "complete_bash", "COMP_WORDS": "eduedge sim f", "COMP_CWORD": "2"}
    out = subprocess.run([EDUEDGE], capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 0 and sorted(out.stdout.split()) == ["fault", "fleet"], out
