"""SNMP devices: the `snmp` section (config.py), the client (client.py), the firmware-profile engine
(profiles.py, poller.py), a poller for a configured device (build.py), traps (traps.py), recordings
(recording.py) and what a recording proves (report.py)."""
