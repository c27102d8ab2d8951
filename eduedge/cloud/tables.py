"""A table as the page shows it and as it exports: named columns, rows of plain cells, to HTML, CSV and XLSX.

Every table on the page is built once as a `Table` (cloud/pages.py); the template draws it and
`/export/<table>.csv|.xlsx` (same query) writes the same rows, so a bureau's spreadsheet says what the
page said. Cells are text or numbers; a cell may carry a link and a status (for the badge) on the page.
CSV is UTF-8 with a byte-order mark, so Excel opens Chinese text correctly.

>>> t = Table("x", "X", [Column("a", "A"), Column("n", "N", numeric=True)], [[Cell("甲"), Cell(2.5)]])
>>> to_csv(t).decode("utf-8-sig").splitlines()
['A,N', '甲,2.5']
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Column:
    key: str
    label: str
    numeric: bool = False


@dataclass
class Cell:
    value: Any                      # what exports (text or a number)
    text: str | None = None         # what the page shows, when it differs (a formatted number, a date)
    href: str | None = None
    status: str | None = None       # draws a badge of this status
    sort: Any = None                # the sort key the page's script uses (default: value)

    @property
    def shown(self) -> str:
        return self.text if self.text is not None else ("" if self.value is None else str(self.value))


@dataclass
class Table:
    name: str                       # its export name
    title: str
    columns: list[Column]
    rows: list[list[Cell]]
    filters: dict[str, list[str]] = field(default_factory=dict)    # column key -> values a select offers
    empty: str = ""


def to_csv(t: Table) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([c.label for c in t.columns])
    for row in t.rows:
        w.writerow(["" if c.value is None else c.value for c in row])
    return buf.getvalue().encode("utf-8-sig")


def to_xlsx(t: Table) -> bytes:
    from openpyxl import Workbook
    from openpyxl.styles import Font

    wb = Workbook()
    ws = wb.active
    ws.title = t.name[:31]
    ws.append([c.label for c in t.columns])
    for cell in ws[1]:
        cell.font = Font(bold=True)
    for row in t.rows:
        ws.append([c.value for c in row])
    for i, col in enumerate(t.columns, start=1):
        longest = max([len(str(col.label))] + [len(r[i - 1].shown) for r in t.rows[:500]])
        ws.column_dimensions[ws.cell(1, i).column_letter].width = min(60, max(8, longest * 1.6 + 2))
    ws.freeze_panes = "A2"
    buf = io.BytesIO()
    wb.save(buf)
    return buf.getvalue()
