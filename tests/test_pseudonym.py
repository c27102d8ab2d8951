"""Pseudonyms: stable within a school, different between schools, keyed (not a plain hash), and the key
comes from the configuration or is made once, privately, in the data directory."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest

from eduedge.agent.config import AgentConfig
from eduedge.core.pseudonym import KEY_FILE, PseudonymError, Pseudonymizer, load_key, normalise_mac, pseudonymizer


def _cfg(data_dir: Path, **privacy: object) -> AgentConfig:
    return AgentConfig.model_validate({"school": {"id": "s1", "name": "S", "city": "c1", "type": "primary"},
                                       "agent": {"data_dir": str(data_dir)}, "privacy": privacy})


def school_key(cfg: AgentConfig) -> Pseudonymizer:
    return pseudonymizer(cfg.privacy.pseudonym_key, cfg.agent.data_dir)


def test_the_same_device_keeps_its_pseudonym_and_two_schools_never_share_one() -> None:
    a, b = Pseudonymizer(b"school-a-key-0123456789"), Pseudonymizer(b"school-b-key-0123456789")
    mac = "3C:5A:B4:00:10:12"
    assert a.mac(mac) == a.mac("3c-5a-b4-00-10-12") == a.mac("3c5a.b400.1012")
    assert a.mac(mac) != b.mac(mac) and a.hostname("stu-tab-042") != b.hostname("stu-tab-042")
    assert a.mac(mac) != a.mac("3c:5a:b4:00:10:13")
    plain = hashlib.sha256(b"mac:3c:5a:b4:00:10:12").hexdigest()[:16]
    assert plain not in a.mac(mac)          # keyed: a dictionary of hashed MACs does not reverse it
    assert "school-a" not in repr(a)


def test_bad_input_and_short_keys_are_refused() -> None:
    with pytest.raises(PseudonymError):
        normalise_mac("not-a-mac")
    with pytest.raises(PseudonymError):
        normalise_mac("3c:5a:b4:00:10:12:99")
    with pytest.raises(PseudonymError):
        Pseudonymizer(b"short")


def test_without_a_configured_key_one_is_made_once_readable_only_by_the_agent(tmp_path: Path) -> None:
    cfg = _cfg(tmp_path / "data")
    first = school_key(cfg).mac("3c:5a:b4:00:10:12")
    path = tmp_path / "data" / KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert school_key(cfg).mac("3c:5a:b4:00:10:12") == first          # kept across restarts
    assert [p.name for p in path.parent.iterdir()] == [KEY_FILE]         # no temporary file left behind
    path.write_text("zz\n")
    with pytest.raises(PseudonymError, match="not a hex key"):
        load_key(cfg.privacy.pseudonym_key, cfg.agent.data_dir)


def test_a_configured_key_wins_and_comes_from_its_file(tmp_path: Path) -> None:
    secret = tmp_path / "key"
    secret.write_text("the-city-issued-secret-of-school-s1\n")
    os.chmod(secret, 0o600)
    cfg = _cfg(tmp_path / "data", pseudonym_key={"file": str(secret)})
    assert school_key(cfg).mac("3c:5a:b4:00:10:12") == \
        Pseudonymizer(b"the-city-issued-secret-of-school-s1").mac("3c:5a:b4:00:10:12")
    assert not (tmp_path / "data" / KEY_FILE).exists()
