"""Pseudonyms for personal identifiers: what leaves the box instead of a student's MAC or host name.

Student and teacher devices are personal information (DESIGN.md, Privacy). Their MAC addresses and host
names stay on the gateway; the cloud sees `HMAC-SHA256(key, kind + ":" + normalised value)`, cut to 64 bits
and written as `p-<16 hex>` (MACs) or `h-<16 hex>` (host names). The key is per school, so:

- within one school a device keeps its pseudonym (the Wi-Fi collector and discovery give the same one for
  the same MAC, which is how the 1:1 ratio counts a tablet seen both ways once);
- two schools never share a pseudonym for the same device, and the cloud cannot link them;
- without the key nobody can go back from a pseudonym to the MAC: a plain hash of a MAC could be reversed
  by hashing all 2^48 of them (in practice the 2^24 of one vendor), an HMAC with a secret key cannot.

The key is `privacy.pseudonym_key` ({file: ...} or {env: ...}) when configured; otherwise a random 256-bit
key is made once in `<data_dir>/pseudonym.key` (mode 0600) and kept. Replacing the key renames every device
in the cloud's eyes; keep the file with the box's other secrets when a box is replaced.

>>> p = Pseudonymizer(b"school-secret-no3-primary")
>>> p.mac("00:1E:13:AA:0B:01") == p.mac("00-1e-13-aa-0b-01") == p.mac("001e.13aa.0b01")
True
>>> p.mac("00:1e:13:aa:0b:01").startswith("p-"), len(p.mac("00:1e:13:aa:0b:01"))
(True, 18)
>>> p.mac("00:1e:13:aa:0b:01") != Pseudonymizer(b"school-secret-no5-middle").mac("00:1e:13:aa:0b:01")
True
>>> p.hostname("STU-Tab-042.local") == p.hostname("stu-tab-042")
True
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
from pathlib import Path

from eduedge.core.secrets import Secret

KEY_FILE = "pseudonym.key"
_HEX = re.compile(r"[0-9a-f]")


class PseudonymError(ValueError):
    pass


def normalise_mac(mac: str) -> str:
    """`aa:bb:cc:dd:ee:ff` from any of the usual spellings; `PseudonymError` if it is not a MAC.

    >>> normalise_mac("AA-BB-CC-DD-EE-0F"), normalise_mac("aabb.ccdd.ee0f")
    ('aa:bb:cc:dd:ee:0f', 'aa:bb:cc:dd:ee:0f')
    """
    digits = "".join(_HEX.findall(mac.lower()))
    if len(digits) != 12 or len(re.sub(r"[0-9a-fA-F:.\-\s]", "", mac)) != 0:
        raise PseudonymError(f"{mac!r} is not a MAC address")
    return ":".join(digits[i:i + 2] for i in range(0, 12, 2))


def normalise_hostname(name: str) -> str:
    """Lower case, without a trailing dot or the mDNS/DHCP domain `.local`/`.lan`, so that one device's
    name hashes alike however it was learned."""
    name = name.strip().rstrip(".").lower()
    return re.sub(r"\.(local|lan|home|localdomain)$", "", name)


class Pseudonymizer:
    """Turns MACs and host names into keyed pseudonyms; holds the key, never logs it."""

    def __init__(self, key: bytes):
        if len(key) < 16:
            raise PseudonymError("the pseudonym key must be at least 16 bytes")
        self._key = key

    def __repr__(self) -> str:
        return "Pseudonymizer(<key hidden>)"

    def _digest(self, kind: str, value: str) -> str:
        return hmac.new(self._key, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()[:16]

    def mac(self, mac: str) -> str:
        return "p-" + self._digest("mac", normalise_mac(mac))

    def hostname(self, name: str) -> str:
        return "h-" + self._digest("host", normalise_hostname(name))


def load_key(configured: Secret | None, data_dir: Path) -> bytes:
    """The school's pseudonym key: the configured secret (`privacy.pseudonym_key`), else
    `<data_dir>/pseudonym.key`, made on first use."""
    if configured is not None:
        return configured.read("privacy.pseudonym_key").encode()
    path = Path(data_dir) / KEY_FILE
    try:
        return bytes.fromhex(path.read_text(encoding="ascii").strip())
    except FileNotFoundError:
        pass
    except ValueError:
        raise PseudonymError(f"{path}: not a hex key; delete it to make a new one (all pseudonyms change)") from None
    path.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(32)
    # written aside, then linked into place: two processes starting at once agree on one whole key
    tmp = path.with_name(f".{KEY_FILE}.{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(key.hex() + "\n")
    try:
        os.link(tmp, path)
    except FileExistsError:
        key = bytes.fromhex(path.read_text(encoding="ascii").strip())
    finally:
        tmp.unlink()
    return key


def pseudonymizer(configured: Secret | None, data_dir: Path) -> Pseudonymizer:
    """The school's pseudonymizer, keyed as `load_key` says."""
    return Pseudonymizer(load_key(configured, data_dir))
