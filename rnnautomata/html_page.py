"""What the HTML reports share: stylesheets, the number format of their tables, sortable tables.

The automata report (:mod:`rnnautomata.report`) and the measure-style report
(:mod:`rnnautomata.measures_report`) build on :data:`CSS` and :func:`fmt`; the table pages (the
seeds page, :mod:`rnnautomata.seeds_report`, and the sweep page, :mod:`rnnautomata.sweep_page`)
on :data:`TABLE_CSS`, :data:`SORT_SCRIPT` and :func:`sort_cell`: a ``<td>`` carries its sort key
in ``data-v``, and clicking a column header sorts the rows by it (numerically where both keys are
numbers).

Example
-------
>>> fmt(0.123456), fmt(0.123456, 5), fmt(True), fmt(None), fmt("a<b")
('0.123', '0.12346', 'yes', '–', 'a&lt;b')
>>> sort_cell("1,000", 1000), sort_cell("never", 1e18, "no")
('<td data-v="1000">1,000</td>', '<td data-v="1e+18" class="no">never</td>')
"""

from __future__ import annotations

import html
from typing import Any

__all__ = ["CSS", "SORT_SCRIPT", "TABLE_CSS", "fmt", "sort_cell"]


def fmt(value: Any, digits: int = 3) -> str:
    """A table cell: None as a dash, booleans as yes/no, floats to ``digits`` significant digits,
    anything else as escaped text."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return html.escape(str(value))


def sort_cell(text, sort_value=None, cls: str | None = None) -> str:
    """A ``<td>`` of a sortable table: ``text`` (HTML, inserted as given) sorted by ``sort_value``
    (default: ``text``), with CSS class ``cls`` (``"no"``: a bad value, in red)."""
    value = html.escape(str(text if sort_value is None else sort_value), quote=True)
    klass = f' class="{cls}"' if cls else ""
    return f'<td data-v="{value}"{klass}>{text}</td>'


#: The stylesheet of the table pages (seeds, sweep; inline in each page).
TABLE_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1100px; color: #222; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { border-bottom: 1px solid #ddd; padding: 0.25em 0.7em; text-align: right; }
th { cursor: pointer; background: #f4f4f4; position: sticky; top: 0; }
td.no { color: #b00; font-weight: bold; }
.figure svg { max-width: 100%; height: auto; }
"""

#: The script that sorts a table page's rows by a clicked column's ``data-v`` (inline, in a <script>).
SORT_SCRIPT = """
document.querySelectorAll('th').forEach(function (th, col) {
  th.addEventListener('click', function () {
    var body = th.closest('table').tBodies[0];
    var rows = Array.from(body.rows);
    var up = th.dataset.up !== '1';
    th.dataset.up = up ? '1' : '0';
    rows.sort(function (a, b) {
      var x = a.cells[col].dataset.v, y = b.cells[col].dataset.v;
      var nx = parseFloat(x), ny = parseFloat(y);
      var c = (isNaN(nx) || isNaN(ny)) ? x.localeCompare(y) : nx - ny;
      return up ? c : -c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  });
});
"""

#: The stylesheet of the report pages (inline in each page).
CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:0;color:#222;background:#fafafa}
main{max-width:1150px;margin:0 auto;padding:1rem 1.5rem 3rem}
h1{font-size:1.5rem;margin:.6rem 0 .2rem} h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #ddd;padding-bottom:.2rem}
.sub{color:#666;margin:0 0 1rem}
table.summary td{padding:.15rem .8rem .15rem 0;vertical-align:top} table.summary td:first-child{color:#555}
pre{background:#f0f0f0;padding:.7rem;overflow:auto;font-size:.8rem;max-height:22rem}
details summary{cursor:pointer;color:#345}
.figure svg,.figure img{width:100%;height:auto;background:#fff}
.viewer{background:#fff;border:1px solid #ddd;border-radius:6px;padding:.8rem}
.controls{display:flex;gap:.6rem;align-items:center;flex-wrap:wrap}
.controls input[type=range]{flex:1;min-width:240px}
.controls button{font-size:1rem;padding:.15rem .6rem}
.phasebar{position:relative;height:1.1rem;margin:.3rem 0 .5rem;font-size:.7rem}
.phasebar span{position:absolute;top:0;height:100%;overflow:hidden;text-align:center;color:#333;border-radius:2px}
#ckpt-info{font-size:.9rem;margin:.4rem 0;min-height:2.6rem}
#ckpt-info b{font-variant-numeric:tabular-nums}
#ckpt-note{color:#a0522d;font-size:.85rem}
#machine-view{min-height:8rem;max-height:62vh;display:flex;justify-content:center;align-items:center;overflow:auto;background:#fff}
#machine-view svg{flex:none}
#machine-view.actual{display:block;max-height:80vh}
.drawing{display:inline-block;vertical-align:top;margin:0 1rem 1rem 0;max-width:100%}
.drawing svg{max-width:100%;height:auto}
#ckpt-table{border-collapse:collapse;font-size:.78rem;font-variant-numeric:tabular-nums;width:100%}
#ckpt-table th,#ckpt-table td{padding:.12rem .45rem;text-align:right;border-bottom:1px solid #eee}
#ckpt-table th{position:sticky;top:0;background:#f3f3f3}
#ckpt-table tr.finite td:nth-child(7){color:#2a7a2a} #ckpt-table tr.open td:nth-child(7){color:#b03a2e}
#ckpt-table tr.current td{background:#fff3c4} #ckpt-table tr[data-index]{cursor:pointer}
.tablewrap{max-height:28rem;overflow:auto;border:1px solid #ddd}
"""
