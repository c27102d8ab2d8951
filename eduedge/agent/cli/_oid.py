"""OIDs as a technician types them: `1.3.6.1.2.1.1`, `.1.3.6.1.2.1.1`, `sysDescr`, `sysDescr.0`,
`SNMPv2-MIB::system`, `ifXTable`, `IF-MIB::ifHCInOctets.3`: a name of the MIBs pysnmp ships compiled
(SNMPv2-MIB, RFC1213-MIB, the SNMP-*-MIBs) or of the standard MIBs school devices answer, which pysnmp does
not ship (IF-MIB, BRIDGE/Q-BRIDGE, LLDP, ENTITY, HOST-RESOURCES, POWER-ETHERNET, Printer, UPS, ...:
mib-names.tsv beside this file, written by scripts/mib-names). Vendor MIBs are asked for by number; an
unknown name says which close names there are.

    >>> resolve_oid("sysDescr.0"), resolve_oid("SNMPv2-MIB::system"), resolve_oid("ifXTable")
    ('1.3.6.1.2.1.1.1.0', '1.3.6.1.2.1.1', '1.3.6.1.2.1.31.1.1')
    >>> resolve_oid("IF-MIB::ifHCInOctets.3"), resolve_oid("lldpRemSysName")
    ('1.3.6.1.2.1.31.1.1.1.6.3', '1.0.8802.1.1.2.1.4.1.1.9')
"""

from __future__ import annotations

import difflib
import functools
import re
from pathlib import Path

from eduedge.core.i18n import _

_NUMERIC = re.compile(r"^\.?(\d+)(\.\d+)*$")
NAMES_FILE = Path(__file__).with_name("mib-names.tsv")
_NAMED = re.compile(r"^(?:(?P<module>[A-Za-z][\w-]*)::)?(?P<name>[A-Za-z][\w-]*)(?P<suffix>(?:\.\d+)*)$")


@functools.cache
def _symbols() -> dict[str, dict[str, str]]:
    """{module: {name: dotted OID}} of every MIB module pysnmp ships compiled, and of those in NAMES_FILE."""
    import pysnmp.smi.mibs
    from pysnmp.smi import builder

    mib_builder = builder.MibBuilder()
    modules = sorted(p.stem for p in Path(pysnmp.smi.mibs.__file__).parent.glob("*.py") if p.stem != "__init__")
    out: dict[str, dict[str, str]] = {}
    for module in modules:
        try:
            mib_builder.load_modules(module)
        except Exception:   # a module pysnmp cannot load here is one fewer source of names, not an error
            continue
        names = {}
        for name, sym in mib_builder.mibSymbols.get(module, {}).items():
            oid = getattr(sym, "name", None)
            if isinstance(oid, tuple) and oid and all(isinstance(x, int) for x in oid):
                names[name] = ".".join(map(str, oid))
        out[module] = names
    with NAMES_FILE.open(encoding="utf-8") as f:
        for line in f:
            if not line.startswith("#"):
                module, name, oid = line.rstrip("\n").split("\t")
                out.setdefault(module, {}).setdefault(name, oid)
    return out


def resolve_oid(text: str) -> str:
    """The dotted OID for `text`; raises ValueError with one line naming close names when there is none."""
    text = text.strip()
    if _NUMERIC.match(text):
        return text.lstrip(".")
    m = _NAMED.match(text)
    if m is None:
        raise ValueError(_("{text} is neither a numeric OID (1.3.6.1.2.1.1) nor a MIB name (sysDescr, "
                           "SNMPv2-MIB::system)").format(text=repr(text)))
    module, name, suffix = m.group("module"), m.group("name"), m.group("suffix")
    symbols = _symbols()
    if module is not None and module not in symbols:
        close = difflib.get_close_matches(module, symbols, n=3)
        raise ValueError((_("no MIB module {module} among those eduedge knows (close: {close})") if close else
                          _("no MIB module {module} among those eduedge knows")).format(
            module=repr(module), close=", ".join(close)))
    for mod in [module] if module else symbols:
        if name in symbols[mod]:
            return symbols[mod][name] + suffix
    known = {n for mod in ([module] if module else symbols) for n in symbols[mod]}
    close = difflib.get_close_matches(name, known, n=4)
    raise ValueError((_("no OID named {name} in the standard MIBs eduedge knows (close: {close}); a vendor MIB's "
                        "objects are asked for by number (1.3.6.1.4.1.2011.5.25 for Huawei's)") if close else
                      _("no OID named {name} in the standard MIBs eduedge knows; a vendor MIB's objects are asked "
                        "for by number (1.3.6.1.4.1.2011.5.25 for Huawei's)")).format(name=repr(name),
                                                                                  close=", ".join(close)))
