"""The kernel every part may use: samples, events, rates, YAML loading, configuration types, secrets,
host:port parsing and pseudonyms. It imports nothing of the agent, the collectors, the cloud or the simulator."""
