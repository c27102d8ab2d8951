"""OIDs as a technician types them: `1.3.6.1.2.1.1`, `.1.3.6.1.2.1.1`, `sysDescr`, `sysDescr.0`,
`SNMPv2-MIB::system`, or any name of the MIBs pysnmp ships compiled (SNMPv2-MIB, RFC1213-MIB, the
SNMP-*-MIBs). IF-MIB is not among them, so `ifTable` is asked for by number (1.3.6.1.2.1.2.2); an
unknown name says which close names there are.

    >>> resolve_oid("sysDescr.0"), resolve_oid("SNMPv2-MIB::system")
    ('1.3.6.1.2.1.1.1.0', '1.3.6.1.2.1.1')
"""

from __future__ import annotations

import difflib
import functools
import re
from pathlib import Path

from eduedge.core.i18n import _

_NUMERIC = re.compile(r"^\.?(\d+)(\.\d+)*$")
_NAMED = re.compile(r"^(?:(?P<module>[A-Za-z][\w-]*)::)?(?P<name>[A-Za-z][\w-]*)(?P<suffix>(?:\.\d+)*)$")


@functools.cache
def _symbols() -> dict[str, dict[str, str]]:
    """{module: {name: dotted OID}} of every MIB module pysnmp ships compiled."""
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
        raise ValueError((_("no MIB module {module} among those pysnmp ships (close: {close})") if close else
                          _("no MIB module {module} among those pysnmp ships")).format(
            module=repr(module), close=", ".join(close)))
    for mod in [module] if module else symbols:
        if name in symbols[mod]:
            return symbols[mod][name] + suffix
    known = {n for mod in ([module] if module else symbols) for n in symbols[mod]}
    close = difflib.get_close_matches(name, known, n=4)
    raise ValueError((_("no OID named {name} in the MIBs pysnmp ships (close: {close}); IF-MIB and vendor MIBs are "
                        "not among them: give the number (ifTable is 1.3.6.1.2.1.2.2)") if close else
                      _("no OID named {name} in the MIBs pysnmp ships; IF-MIB and vendor MIBs are not among them: "
                        "give the number (ifTable is 1.3.6.1.2.1.2.2)")).format(name=repr(name),
                                                                              close=", ".join(close)))
