"""The package is the product: the wheel, installed alone into a fresh venv, is an agent that works.

The wheel and the sdist are built as a user builds them (`python -m build`), the wheel is installed with
pip into a venv in a temporary folder (the base install: no extras), and the installed `eduedge` is run
from another folder, as on a gateway box: its version, the rule packs, a recording matched to its
profile, the shipped example configuration printed, checked and installed as a service (under a staging
root), and a poll of a real snmpd. The second half proves the base install is the agent alone: none of
the extras' packages is there, and the box's commands import none of the city's or the simulator's code
(`-X importtime` lists every module a command imports).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from eduedge.simulator.snmpd import start_snmpd

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[1]
# pyproject reads the version from eduedge/_version.py (`dynamic`): the checkout's, not an installed one's
VERSION = re.search(r'__version__ = "([^"]+)"', (REPO / "eduedge" / "_version.py").read_text(encoding="utf-8"))[1]
RECORDING = REPO / "eduedge/simulator/realdevices/snmprec/vrp_5720.snmprec"

# Tracked files under eduedge/ that stay in the source tree, each with why.
NOT_SHIPPED = {
    "eduedge/simulator/realdevices/expected/": "LibreNMS's own results: the tests' oracle (12 MB), not run-time data",
    "eduedge/cloud/README.md": "the city operator's guide: documentation in the repository",
    "eduedge/collectors/wifi/testdata/": "controller recordings written from MIBs, read only by the tests",
    "eduedge/locale/eduedge.pot": "the messages' template: `make messages` builds the .mo that ships from it",
    "eduedge/locale/zh_CN/LC_MESSAGES/eduedge.po": "the Chinese catalogue's source; its compiled .mo ships",
}
# What the extras bring, by import name; the base install must have none of it.
EXTRAS_MODULES = ("psycopg", "jsonschema_rs", "snmpsim", "pysmi")
# The box's code; a base-install command importing any of it carries what the box never needs.
NOT_ON_THE_BOX = ("eduedge.cloud", "eduedge.simulator", *EXTRAS_MODULES)


@dataclass(frozen=True)
class Dist:
    wheel: Path
    sdist: Path


@dataclass(frozen=True)
class Box:
    """A fresh venv with the wheel installed, and a working folder that is not the checkout."""

    venv: Path
    work: Path
    env: dict[str, str] = field(repr=False)

    def run(self, *args: str, python_flags: tuple[str, ...] = (), timeout: float = 120,
            **kw) -> subprocess.CompletedProcess[str]:
        if python_flags:    # the console script, through the venv's interpreter with these flags
            cmd = [str(self.venv / "bin/python"), *python_flags, str(self.venv / "bin/eduedge"), *args]
        else:
            cmd = [str(self.venv / "bin/eduedge"), *args]
        return subprocess.run(cmd, cwd=self.work, env=self.env, capture_output=True, text=True,
                              timeout=timeout, **kw)


def _tracked(under: str) -> list[str]:
    run = subprocess.run(["git", "ls-files", "-z", under], cwd=REPO, capture_output=True, text=True, check=True)
    return [p for p in run.stdout.split("\0") if p]


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Dist:
    out = tmp_path_factory.mktemp("dist")
    had_build_dir = (REPO / "build").exists()
    run = subprocess.run([sys.executable, "-m", "build", "--outdir", str(out), str(REPO)],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert had_build_dir or not (REPO / "build").exists(), "python -m build left build/ in the checkout"
    (wheel,) = out.glob("eduedge-*.whl")
    (sdist,) = out.glob("eduedge-*.tar.gz")
    return Dist(wheel, sdist)


@pytest.fixture(scope="module")
def box(tmp_path_factory, dist) -> Box:
    root = tmp_path_factory.mktemp("box")
    venv, work = root / "venv", root / "elsewhere"
    work.mkdir()
    # The user's environment, less whatever points back at the checkout or its venv.
    here_bin = str(Path(sys.executable).parent)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("EDUEDGE_", "PYTHON")) and k not in ("VIRTUAL_ENV", "PIP_REQUIRE_VIRTUALENV")}
    env["PATH"] = os.pathsep.join([str(venv / "bin")] + [p for p in env.get("PATH", "").split(os.pathsep)
                                                          if p and p != here_bin])
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    # pip as a user runs it: the dependencies from the index (or the wheels cache pip is configured with)
    run = subprocess.run([str(venv / "bin/pip"), "install", "-q", str(dist.wheel)], cwd=work, env=env,
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return Box(venv, work, env)


def test_the_wheel_carries_what_the_agent_reads_at_run_time(dist):
    names = set(zipfile.ZipFile(dist.wheel).namelist())
    tops = {n.split("/")[0] for n in names}
    assert tops == {"eduedge", f"eduedge-{VERSION}.dist-info"}, "nothing but eduedge in site-packages"
    assert not [n for n in names if "tests/" in n or "/expected/" in n or "__pycache__" in n]
    # every tracked file of the package travels, data included, except what stays in the tree on purpose
    wanted = {p for p in _tracked("eduedge") if not p.startswith(tuple(NOT_SHIPPED))}
    assert wanted - names == set(), "tracked files the wheel lacks (package-data in pyproject.toml?)"
    # what the agent reads at run time, by name (wherever the tree puts it inside the package)
    for must in ("/firmware_profiles/canonical-metrics.yaml", "/firmware_profiles/huawei/huawei-switch.yaml",
                 "/standards/yinchuan-2018.yaml", "/contract/envelope.schema.json", "/eduedge.service",
                 "/example-school.yaml", "/campuses/campus-demo.yaml", "/realdevices/snmprec/vrp_5720.snmprec",
                 "/realdevices/COPYING", ".dist-info/licenses/LICENSE", "/locale/zh_CN/LC_MESSAGES/eduedge.mo"):
        assert [n for n in names if n.endswith(must)], must


def test_the_sdist_builds_the_same_package(dist):
    import tarfile

    with tarfile.open(dist.sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    assert {"pyproject.toml", "README.md", "LICENSE", "eduedge/simulator/realdevices/COPYING"} <= names
    package = {p for p in _tracked("eduedge") if not p.startswith(tuple(NOT_SHIPPED))}
    assert package - names == set()
    assert not [n for n in names if n.startswith("tests/") or "/expected/" in n]


def test_the_installed_package_is_not_the_checkout(box):
    where = subprocess.run([str(box.venv / "bin/python"), "-c", "import eduedge; print(eduedge.__file__)"],
                           cwd=box.work, env=box.env, capture_output=True, text=True, check=True).stdout.strip()
    assert Path(where).is_relative_to(box.venv), where


def test_version(box):
    run = box.run("--version")
    assert run.returncode == 0, run.stderr
    assert f"eduedge {VERSION}" in run.stdout


def test_rules_lists_every_shipped_pack(box):
    run = box.run("rules")
    assert run.returncode == 0, run.stderr
    for pack in sorted((REPO / "eduedge/config/standards").glob("*.yaml")):
        assert f"{pack.stem}." in run.stdout, f"{pack.stem}: no rule of it listed"


def test_profile_match_reads_a_recording(box):
    shutil.copy(RECORDING, box.work / RECORDING.name)
    run = box.run("profile", "match", "--snmprec", RECORDING.name)
    assert run.returncode == 0, run.stderr
    assert "huawei-switch" in run.stdout and "S5720-56C-PWR-EI-AC" in run.stdout


def test_the_shipped_example_configuration_checks_and_installs(box):
    example = box.run("config", "example")
    assert example.returncode == 0, example.stderr
    assert example.stdout == (REPO / "eduedge/config/example-school.yaml").read_text(encoding="utf-8")
    (box.work / "eduedge.yaml").write_text(example.stdout, encoding="utf-8")
    check = box.run("config", "check", "--file-only", "eduedge.yaml")  # its secrets are not on this machine
    assert check.returncode == 0, check.stderr
    assert "OK - school yc-xingqing-no3-primary" in check.stdout
    # the systemd unit comes out of the package, pointing at this install's eduedge
    install = box.run("service", "install", "--config", "eduedge.yaml", "--root", "staging")
    assert install.returncode == 0, install.stderr
    unit = (box.work / "staging/etc/systemd/system/eduedge.service").read_text()
    assert f"ExecStart={box.venv / 'bin/eduedge'} run --config {box.work / 'eduedge.yaml'}" in unit
    assert "AmbientCapabilities=" in unit


def test_the_installed_package_speaks_chinese(box):
    (box.work / "lang.yaml").write_text("school: {id: lang-school, name: 语言测试小学, city: yinchuan, type: primary}\n"
                                        f"agent: {{data_dir: {box.work}}}\n", encoding="utf-8")
    run = box.run("--lang", "zh", "diag", "--cached", "--config", "lang.yaml")
    assert run.returncode == 3 and "中没有保存的结果" in run.stderr, run.stdout + run.stderr


def test_poll_a_real_snmpd(box):
    snmpd = start_snmpd(community="eduedge-pkg")
    try:
        run = box.run("poll", f"{snmpd.host}:{snmpd.port}", "--community", "eduedge-pkg", "--json",
                      "--rate-interval", "0")
    finally:
        snmpd.stop()
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert out["profile"] == "linux"
    assert "lo" in {i["name"] for i in out["interfaces"]}


def test_the_base_install_has_none_of_the_extras(box):
    probe = "import importlib.util as u, sys; print([m for m in sys.argv[1:] if u.find_spec(m)])"
    run = subprocess.run([str(box.venv / "bin/python"), "-c", probe, *EXTRAS_MODULES], cwd=box.work,
                         env=box.env, capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "[]"
    commands = {line.split()[1] for line in box.run("--help").stdout.splitlines()
                if line.startswith("│ ") and len(line.split()) > 1}
    assert {"poll", "rules", "config"} <= commands
    assert not commands & {"cloud", "sim", "demo"}, commands


@pytest.mark.parametrize("args", [("--help",), ("rules",), ("config", "check", "--file-only", "eduedge.yaml")],
                         ids=["help", "rules", "config-check"])
def test_the_box_commands_import_no_city_or_simulator_code(box, args):
    (box.work / "eduedge.yaml").write_text(box.run("config", "example").stdout, encoding="utf-8")
    run = box.run(*args, python_flags=("-X", "importtime"))
    assert run.returncode == 0, run.stderr[-3000:]
    imported = [line.rsplit("|", 1)[1].strip() for line in run.stderr.splitlines()
                if line.startswith("import time:") and "|" in line]
    assert "eduedge.agent" in imported, "-X importtime listed nothing: the check would see nothing"
    found = [m for m in imported if m.startswith(NOT_ON_THE_BOX)]
    assert found == [], found
