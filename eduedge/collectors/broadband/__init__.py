"""The school's broadband: the collector (collector.py), the built-in test engine (engine.py) and the iperf3
one (iperf3.py), what a test measured (result.py), when tests may run (schedule.py), the `broadband`
section (config.py)."""
