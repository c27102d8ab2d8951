"""The agent's footprint: resident memory and CPU of the real `eduedge run` on simulated campuses, over time.

    .venv/bin/python bench/footprint.py [--campus demo,large] [--minutes 10] [--baseline COMMIT]
    .venv/bin/python bench/footprint.py --campus large --minutes 60 --every 10 --warmup 5 --config polling --speed 0
                                                                                 # the leak run
    .venv/bin/python bench/footprint.py --campus demo --minutes 5 --tracemalloc 12   # where the memory is

1. Per campus (`eduedge/simulator/campuses/campus-NAME.yaml`): `sim_up` on loopback with its own MQTT broker,
   its clock in a lesson (simulator/demo.py), and the agent configuration the simulator writes for it (every
   SNMP device, the zones, the uplink, the broker, the standards, discovery, reachability, broadband against
   the campus's test server, live-class probes); `--config polling` keeps only the SNMP polling and the
   reporting (what `sim up` wrote when issue 19 measured 80 MB on campus-demo).
2. `eduedge run` (its modules compiled first, as pip does on install) on it for `--minutes`; every `--every`
   seconds the agent's RSS, USS and CPU since the last sample (user + system, in % of one core) are read with
   psutil and printed.
3. With `--baseline COMMIT`, the same run of that commit follows on the same campus (a `git worktree` of it,
   imported ahead of this checkout through PYTHONPATH; the simulator is this checkout's for both), and the
   two are printed side by side. With `--rounds 2` the runs alternate (new, old, new, old).
4. Per run: RSS at the end, its peak, CPU % over the run after `--warmup` minutes, and the RSS slope in MB
   per hour (least squares over the samples after the warm-up). Sample well inside the agent's poll interval
   (60 s): RSS swings by 0.5-1.5 MB within each poll cycle on campus-large, and each poll starts +-10 % off
   its interval at random, so samples taken once a cycle wander against the cycle and show that swing as steps
   that come and go over minutes, which can decide a 60-minute slope by chance.

`--tracemalloc N` runs the agent under tracemalloc (bench/_traced_agent.py) and prints, at the end, the N
files that hold the most Python memory and the growth per file between the end of the warm-up and the end;
tracemalloc's own bookkeeping roughly doubles the RSS of such a run, so its RSS is not a figure.

Targets (issue 19): RSS <= 60 MB on campus-demo, <= 100 MB on campus-large, and a slope under 1 MB/h over 60
minutes on campus-large. Nothing is asserted; everything started is stopped and removed at the end.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from eduedge.simulator.demo import LESSON_TIME, campus_in_a_lesson  # noqa: E402
from eduedge.simulator.launch import sim_down, sim_up  # noqa: E402

CAMPUSES = REPO / "eduedge" / "simulator" / "campuses"
MB = 1024 * 1024


@dataclass
class Run:
    label: str
    times: list[float] = field(default_factory=list)        # seconds since the agent started
    rss: list[float] = field(default_factory=list)          # MB
    uss: list[float] = field(default_factory=list)          # MB
    cpu: list[float] = field(default_factory=list)          # % of one core since the previous sample
    cpu_total: list[float] = field(default_factory=list)    # CPU seconds since the start
    exit_code: int | None = None
    traced: str = ""


def slope_mb_per_hour(ts: list[float], ys: list[float]) -> float:
    """Least-squares slope of ys over ts (seconds), in units of ys per hour.

    >>> round(slope_mb_per_hour([0, 1800, 3600], [50.0, 50.5, 51.0]), 3)
    1.0
    """
    n = len(ts)
    if n < 2:
        return float("nan")
    mt, my = sum(ts) / n, sum(ys) / n
    var = sum((t - mt) ** 2 for t in ts)
    return sum((t - mt) * (y - my) for t, y in zip(ts, ys, strict=True)) / var * 3600 if var else float("nan")


# What `--config polling` leaves out of the simulator's configuration: polling and reporting alone, as `sim up`
# wrote it when issue 19 measured 80 MB on campus-demo.
BEYOND_POLLING = ("standards", "discovery", "reachability", "broadband", "live_class")


def agent_config(generated: Path, out: Path, data_dir: Path, polling_only: bool = False) -> Path:
    doc = yaml.safe_load(generated.read_text(encoding="utf-8"))
    doc["agent"]["data_dir"] = str(data_dir)
    if polling_only:
        for section in BEYOND_POLLING:
            doc.pop(section, None)
    out.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return out


def baseline_tree(commit: str, work: Path) -> Path:
    tree = work / f"baseline-{commit[:12]}"
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(tree), commit], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if not (tree / "eduedge" / "cli.py").exists():
        raise SystemExit(f"{commit} has no eduedge/cli.py (before the one-package layout); pick a later commit")
    return tree


def compiled(tree: Path) -> None:
    """Bytecode for every module of `tree`, as pip writes it when it installs the wheel on a box: without it
    (PYTHONDONTWRITEBYTECODE, a fresh clone) each start compiles the package, and the compiler's garbage stays
    in the heap (about 1 MB at start)."""
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(tree / "eduedge")], check=True,
                   stdout=subprocess.DEVNULL)


def run_agent(label: str, tree: Path | None, cfg: Path, minutes: float, every: float, log: Path,
              traced: Path | None, top: int, warmup: float) -> Run:
    env = dict(os.environ)
    if tree is not None:
        env["PYTHONPATH"] = str(tree) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    if traced is not None:
        cmd = [sys.executable, str(REPO / "bench" / "_traced_agent.py"), str(traced), str(warmup * 60), "run",
               "--config", str(cfg)]
    else:
        cmd = [sys.executable, "-c", "from eduedge.cli import main; main()", "run", "--config", str(cfg)]
    run = Run(label)
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=str(cfg.parent),
                                start_new_session=True)
    ps = psutil.Process(proc.pid)
    start = time.monotonic()
    last_t, last_cpu = start, 0.0
    try:
        end = start + minutes * 60
        while time.monotonic() < end and proc.poll() is None:
            time.sleep(min(every, max(0.0, end - time.monotonic())))
            if proc.poll() is not None:
                break
            try:
                with ps.oneshot():
                    mem, cpu = ps.memory_full_info(), sum(ps.cpu_times()[:2])
            except psutil.NoSuchProcess:
                break
            now = time.monotonic()
            run.times.append(now - start)
            run.rss.append(mem.rss / MB)
            run.uss.append(mem.uss / MB)
            run.cpu.append(100 * (cpu - last_cpu) / (now - last_t))
            run.cpu_total.append(cpu)
            last_t, last_cpu = now, cpu
            print(f"  {label:<14} {now - start:7.0f} s  RSS {mem.rss / MB:6.1f} MB  USS {mem.uss / MB:6.1f} MB  "
                  f"CPU {run.cpu[-1]:5.1f} %", flush=True)
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    run.exit_code = proc.returncode
    text = log.read_text(errors="replace")
    # a poll cut by its deadline holds a different share of its walks each time: say which devices were
    # (the words of DevicePoller.poll's error)
    cut = Counter(m.group(1) for m in re.finditer(r"(\S+): poll deadline of", text))
    if cut:
        print(f"  {label}: polls cut by their deadline: " + ", ".join(f"{d} x{n}" for d, n in cut.most_common()))
    if proc.returncode not in (0, -15):
        print(f"  {label}: the agent exited with {proc.returncode}; last lines of {log}:")
        for line in text.splitlines()[-15:]:
            print(f"    | {line}")
    if traced is not None:
        run.traced = traced_report(traced, top)
    return run


def traced_report(prefix: Path, top: int) -> str:
    import tracemalloc

    first, last = prefix.with_suffix(".warm"), prefix.with_suffix(".end")
    if not last.exists():
        return "  (no tracemalloc snapshot: the agent stopped before writing one)"
    end = tracemalloc.Snapshot.load(str(last))
    lines = [f"  Python memory at the end: {sum(s.size for s in end.statistics('filename')) / MB:.1f} MB; by file:"]
    for s in end.statistics("filename")[:top]:
        lines.append(f"    {s.size / MB:7.2f} MB {s.count:>8} blocks  {_short(s.traceback[0].filename)}")
    lines.append("  by line:")
    for s in end.statistics("lineno")[:top]:
        fr = s.traceback[0]
        lines.append(f"    {s.size / MB:7.2f} MB {s.count:>8} blocks  {_short(fr.filename)}:{fr.lineno}")
    if first.exists():
        diff = end.compare_to(tracemalloc.Snapshot.load(str(first)), "filename")
        lines.append("  growth from the end of the warm-up to the end, by file:")
        for s in sorted(diff, key=lambda d: -d.size_diff)[:top]:
            where = _short(s.traceback[0].filename)
            lines.append(f"    {s.size_diff / MB:+7.3f} MB {s.count_diff:>+8} blocks  {where}")
        lines.append("  growth by line:")
        for s in sorted(end.compare_to(tracemalloc.Snapshot.load(str(first)), "lineno"),
                        key=lambda d: -d.size_diff)[:top]:
            fr = s.traceback[0]
            where = f"{_short(fr.filename)}:{fr.lineno}"
            lines.append(f"    {s.size_diff / MB:+7.3f} MB {s.count_diff:>+8} blocks  {where}")
    return "\n".join(lines)


def _short(path: str) -> str:
    for marker in ("/site-packages/", "/eduedge/", "/lib/python3"):
        if marker in path:
            return path.split(marker, 1)[1] if marker != "/eduedge/" else "eduedge/" + path.split(marker, 1)[1]
    return path


def summary(run: Run, warmup: float) -> dict[str, float]:
    after = [i for i, t in enumerate(run.times) if t >= warmup * 60]
    ts, ys = [run.times[i] for i in after], [run.rss[i] for i in after]
    cpu = float("nan")
    if len(after) >= 2:
        i0, i1 = after[0], after[-1]
        cpu = 100 * (run.cpu_total[i1] - run.cpu_total[i0]) / (run.times[i1] - run.times[i0])
    return {"rss_end": run.rss[-1] if run.rss else float("nan"), "rss_peak": max(run.rss, default=float("nan")),
            "uss_end": run.uss[-1] if run.uss else float("nan"), "cpu": cpu,
            "slope": slope_mb_per_hour(ts, ys)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--campus", default="demo,large", help="campus-NAME.yaml files, comma-separated")
    ap.add_argument("--minutes", type=float, default=10.0, help="per run (60 for a leak run)")
    ap.add_argument("--every", type=float, default=15.0, help="seconds between samples")
    ap.add_argument("--warmup", type=float, default=2.0, help="minutes left out of the CPU figure and the slope")
    ap.add_argument("--baseline", default="", help="a commit to run the same way, side by side")
    ap.add_argument("--rounds", type=int, default=1, help="runs of each tree, alternated")
    ap.add_argument("--config", choices=("sim", "polling"), default="sim",
                    help="sim: the simulator's configuration as written (every collector, the standards); polling: "
                         "only SNMP polling and reporting")
    ap.add_argument("--clock", default=LESSON_TIME, metavar="ISO",
                    help="the campus's simulated local time at the start (default: in a lesson; 10:33 sees the "
                         "lesson end and the break begin two minutes in)")
    ap.add_argument("--speed", type=float, default=1.0,
                    help="the simulated clock's speed; 0 holds the campus in the period it starts in (the same "
                         "clients and traffic for the whole run, as a leak run wants; counters still advance)")
    ap.add_argument("--tracemalloc", type=int, default=0, metavar="N", help="trace the agent; show the top N files")
    a = ap.parse_args()
    # stopped with SIGTERM (a timeout, kill): the campus, its broker and the agent are stopped as on ^C
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    work = Path(tempfile.mkdtemp(prefix="eduedge-bench-footprint-"))
    trees: list[tuple[str, Path | None]] = [("new", None)]
    if a.baseline:
        commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", a.baseline], check=True, capture_output=True,
                                text=True).stdout.strip()
        trees.append((f"old {commit[:8]}", baseline_tree(commit, work)))
    for _label, tree in trees:
        compiled(tree or REPO)
    head = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                          text=True).stdout.strip()
    print(f"eduedge {head} (new){', against ' + trees[1][0] if a.baseline else ''}; {a.minutes:g} min per run, "
          f"--config {a.config}, load average {os.getloadavg()[0]:.1f}")
    results: list[tuple[str, list[Run]]] = []
    try:
        for name in a.campus.split(","):
            campus = CAMPUSES / f"campus-{name}.yaml"
            state_dir = work / f"sim-{name}"
            t = time.monotonic()
            state = sim_up(campus_in_a_lesson(campus, work / campus.name, a.clock, a.speed), state_dir, broker=True)
            runs: list[Run] = []
            try:
                n = sum(1 for e in state.endpoints if e.snmp_port)
                print(f"\ncampus-{name}: {n} SNMP agents up in {time.monotonic() - t:.0f} s")
                for r in range(a.rounds):
                    for label, tree in trees:
                        tag = f"{label.split()[0]}-{r}"
                        cfg = agent_config(Path(state.agent_config), work / f"agent-{name}-{tag}.yaml",
                                           work / f"data-{name}-{tag}", a.config == "polling")
                        traced = work / f"trace-{name}-{tag}" if a.tracemalloc else None
                        runs.append(run_agent(label, tree, cfg, a.minutes, a.every, work / f"agent-{name}-{tag}.log",
                                              traced, a.tracemalloc, a.warmup))
                        if runs[-1].traced:
                            print(runs[-1].traced)
            finally:
                report = sim_down(state_dir)
                if report.left:
                    print(f"  NOT REMOVED: {report.left}")
            results.append((name, runs))
    finally:
        for _label, tree in trees:
            if tree is not None:
                subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(tree)], check=False)
        shutil.rmtree(work, ignore_errors=True)
    print(f"\nsummary ({a.minutes:g} min per run; CPU and slope after {a.warmup:g} min; load average now "
          f"{os.getloadavg()[0]:.1f})")
    print(f"{'campus':<8} {'run':<14} {'RSS end':>8} {'peak':>7} {'USS end':>8} {'CPU % core':>10} {'MB/hour':>8}")
    for name, runs in results:
        for run in runs:
            s = summary(run, a.warmup)
            print(f"{name:<8} {run.label:<14} {s['rss_end']:7.1f}M {s['rss_peak']:6.1f}M {s['uss_end']:7.1f}M "
                  f"{s['cpu']:10.2f} {s['slope']:+8.2f}")


if __name__ == "__main__":
    main()
