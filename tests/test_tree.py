"""The clone is the whole product: no tracked file names a path of one machine or reaches for a folder
beside the checkout (the recordings once lived in a sibling folder, with our build machine's path as the
fallback). Checked over `git ls-files`, so a new file is covered the day it is added."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path, PurePosixPath

import pytest

REPO = Path(__file__).resolve().parents[1]

# The recordings are data from another project (sysDescr strings and LibreNMS's results may carry anything).
DATA = ("eduedge/simulator/realdevices/snmprec/", "eduedge/simulator/realdevices/expected/",
        "eduedge/simulator/realdevices/MANIFEST.tsv")

# A home or work directory of one machine or one user. System paths of the box (/etc/eduedge, /var/lib,
# /usr/sbin/snmpd, /opt/...) are the product's own and stay allowed.
MACHINE_PATH = re.compile(r"(?<![\w.~-])/(?:work|home|root|Users)/")
# A folder beside the checkout, by name or by the variable that once pointed at it.
SIBLING = re.compile(r"\.\.[/\\]+shared\b|EDUEDGE_" r"SHARED|\bREPO\.parents?\b")  # split: this line is no reach
# `..` segments: `../x`, `$(dirname "$0")/..`; not an ellipsis (`...`, `.../cmd`).
DOTDOT = re.compile(r"(?<![.\w])\.\.(?:/\.\.)*(?=[/\"'\s)]|$)")
# Path(__file__)[.resolve()] followed by .parent / .parents[N] steps.
FILE_UP = re.compile(r"__file__\)(?:\.resolve\(\)|\.absolute\(\))?(?P<steps>(?:\.parent\b|\.parents\[\d+\])+)")
STEP = re.compile(r"\.parents\[(\d+)\]|\.parent\b")

# Lines that look like a reach outside and are not one, each with why.
ALLOWED = {
    ("tests/test_contract.py", "../../etc/passwd"): "a path-traversal attempt the contract must refuse",
    ("tests/test_daemon.py", "../../etc/passwd"): "a path-traversal attempt the agent must refuse",
    ("tests/test_tree.py", "../../etc/passwd"): "the check's own example of an allowed line",
}


def levels_up(steps: str) -> int:
    """How many folders above the file's own folder `Path(__file__)<steps>` lands.

    >>> levels_up(".parent"), levels_up(".parents[1]"), levels_up(".parent.parent"), levels_up(".parents[1].parent")
    (0, 1, 1, 2)
    """
    up = -1                                     # Path(__file__) is the file; its first parent is its folder
    for m in STEP.finditer(steps):
        up += int(m.group(1)) + 1 if m.group(1) else 1
    return up


def problems_in(path: str, text: str) -> list[str]:
    """Every reach outside the clone in the tracked file `path` (relative to the root), one line each."""
    depth = len(PurePosixPath(path).parts) - 1  # how many folders lie between the file and the root
    found = []
    for lineno, line in enumerate(text.splitlines(), 1):
        where = f"{path}:{lineno}: {line.strip()[:120]}"
        if any(path == p and s in line for p, s in ALLOWED):
            continue
        if MACHINE_PATH.search(line):
            found.append(f"{where}  (an absolute path of one machine)")
        if SIBLING.search(line):
            found.append(f"{where}  (a folder beside the checkout)")
        for m in DOTDOT.finditer(line):
            if m.group(0).count("..") > depth:
                found.append(f"{where}  ({m.group(0)} from {depth} folder(s) deep leaves the clone)")
        for m in FILE_UP.finditer(line):
            if levels_up(m.group("steps")) > depth:
                found.append(f"{where}  (Path(__file__){m.group('steps')} is above the clone's root)")
    return found


def tracked_files() -> list[str]:
    run = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, text=True, check=False)
    assert run.returncode == 0, f"this test reads the checkout's tracked files: git ls-files: {run.stderr}"
    return [p for p in run.stdout.split("\0") if p and not p.startswith(DATA)]


def test_no_tracked_file_reaches_outside_the_clone():
    found = []
    for path in tracked_files():
        file = REPO / path
        if not file.is_file():              # deleted in the work tree, not yet committed
            continue
        data = file.read_bytes()
        if b"\0" in data:                   # binary
            continue
        found += problems_in(path, data.decode("utf-8", errors="replace"))
    assert found == [], "\n".join(found)


@pytest.mark.parametrize(("path", "line"), [
    ("tests/test_x.py", 'SHARED = Path("/wo' 'rk/shared/realdevices")'),
    ("eduedge/simulator/shared.py", 'p = Path("/ro' 'ot/.cache")'),
    ("README.md", "the recordings in `../sh" "ared/realdevices`"),
    ("tests/test_x.py", "base = REPO.pa" "rent / 'shared'"),
    ("tests/test_x.py", "OUT = Path(__fi" "le__).resolve().parents[2] / 'shared'"),
    ("eduedge/simulator/shared.py", "OUT = Path(__fi" "le__).resolve().parent.parent.parent.parent"),
    ("Makefile", "\tcp -r ../" "realdevices eduedge/simulator/"),
    (".ci/run", 'cd "$(dirname "$0")/../' '.."'),
])
def test_the_check_sees_a_reach_outside(path, line):
    assert problems_in(path, line), line


@pytest.mark.parametrize(("path", "line"), [
    ("tests/test_x.py", "REPO = Path(__fi" "le__).resolve().parents[1]"),  # split: a line of this file is checked
    ("eduedge/collectors/snmp/profiles.py", 'BUNDLED = Path(__fi' 'le__).resolve().parents[2] / "firmware_profiles"'),
    (".ci/run", 'cd "$(dirname "$0")/.."'),
    ("eduedge/config/eduedge.service", "ExecStart=/opt/eduedge/.venv/bin/eduedge run --config /etc/eduedge/x.yaml"),
    ("docs/DESIGN.md", "their answers go up on `.../cmd-result`"),
    ("eduedge/agent/cli_service.py", 'v = ", ".join(v[:5]) + (" ..." if len(v) > 5 else "")'),
    ("tests/test_contract.py", '("run-check", {"check": "../../etc/passwd"}, False),'),
])
def test_the_check_lets_the_clones_own_paths_be(path, line):
    assert problems_in(path, line) == []
