"""What is on the campus network: sightings from sweeps, passive listening and switch tables
(discovery.py), what each device is (identify.py, with the OUI vendor table oui.py), the `discovery`
section (config.py)."""
