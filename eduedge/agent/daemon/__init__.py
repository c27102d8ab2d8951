"""`eduedge run`: the service a school box runs for months - schedule, collect, buffer, deliver.

- scheduler.py: every job on its interval with jitter, one run at a time, a skipped run rather than a queue;
- wiring.py: the jobs and listeners of one configuration, built by the factories registered in agent/jobs.py
  (which says what each collector's jobs are), and rebuilt on a reload keeping what did not change;
- delivery.py: where results go (the SampleStore, the outbox) and what stays in memory;
- service.py: start-up, the main loop, signals, reload, the state file for `eduedge status`, birth, and what
  commands may do.

Threads and who owns what:
- main thread: the `schedule` loop (cadence with jitter), signals (SIGTERM/SIGINT stop, SIGHUP reloads the
  configuration), the state file for `eduedge status`, outbox housekeeping;
- one asyncio loop thread: the `collect()` of every collector that does not block: SNMP polls (one job
  per device, each with its own deadline, at most `snmp.defaults.concurrency` at once), so a dead switch
  never holds up another; discovery cycles, reachability probes, live-class probes and the trap receiver.
  The discovered inventory is only touched on this thread;
- a small thread pool: the blocking collectors (host, judging, broadband tests,
  live-class loads), and keeping every result in the store and the outbox;
- the MQTT link's threads (agent/link.py), which alone talk to the broker.

The package names no collector: adding one is a `Collector` and a registered factory in agent/jobs.py.
"""

from eduedge.agent.daemon.scheduler import Job, jittered
from eduedge.agent.daemon.service import Daemon, agent_id
from eduedge.agent.jobs import HOST_DEVICE, per_client

__all__ = ["HOST_DEVICE", "Daemon", "Job", "agent_id", "jittered", "per_client"]
