"""The contract check the tests run on every message they receive, with the city's compiled validators.

`eduedge.agent.contract.problems` (Python jsonschema) costs ~23 ms for a metrics message of 100 samples, and
a test that receives a fleet's 30 days of history spent most of its time there. The city's receiver checks
the same schema files (agent/contract/*.schema.json) with jsonschema-rs (cloud/checker.py) in ~0.1 ms, and
tests/test_cloud_checker.py holds both engines to the same verdicts on a valid and a broken message of every
type; so the tests check what they receive as the city does.
"""

from __future__ import annotations

from eduedge.agent import contract
from eduedge.cloud.checker import schema_problems, validators


def problems(message: object) -> list[str]:
    """Why `message` (a decoded agent-to-cloud message) breaks the contract; empty when it is valid."""
    head = message.get("schema") if isinstance(message, dict) else None
    name = head.get("name") if isinstance(head, dict) else None
    if name not in contract.MESSAGE_TYPES:
        return contract.problems(message)        # not an object, or no type: the agent's own words for it
    return schema_problems(validators()[name], message, 50)
