"""agent/samples.py: what the rest of the agent does with a `Sample` keeps working now that it is a plain
slots dataclass (cheap to build) rather than a frozen one."""

from __future__ import annotations

import dataclasses
import pickle

from eduedge.core.samples import Sample


def test_samples_compare_copy_pickle_and_serialise_as_before():
    s = Sample(1.5, "sw1", "if.in_bps", 8.0, "bit/s", {"interface": "Gi0/1"})
    assert s == Sample(1.5, "sw1", "if.in_bps", 8.0, "bit/s", {"interface": "Gi0/1"})
    assert s != dataclasses.replace(s, value=9.0)
    assert s != (1.5, "sw1", "if.in_bps", 8.0, "bit/s", {"interface": "Gi0/1"})   # not a tuple
    assert pickle.loads(pickle.dumps(s)) == s
    assert dataclasses.asdict(s)["tags"] == {"interface": "Gi0/1"}
    assert s.to_dict() == {"t": 1.5, "device": "sw1", "metric": "if.in_bps", "value": 8.0, "unit": "bit/s",
                           "tags": {"interface": "Gi0/1"}}
    bare = Sample(time=2.0, device="sw1", metric="device.uptime_s", value=5)
    assert bare.to_dict() == {"t": 2.0, "device": "sw1", "metric": "device.uptime_s", "value": 5}
    assert bare.tags == {} and bare.tags is not Sample(0, "", "", 0).tags    # no shared default dict
    assert not hasattr(s, "__dict__")        # slots: no per-sample dict
