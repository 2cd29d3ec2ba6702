"""The static leaderboard page: one self-contained ``index.html`` (inline CSS, JS and PNGs; no CDN).

Layout: a header with the run summary, a table of contents, then one ``<section class="dataset">``
per dataset holding its figures and one table per (variant, split) (plus by-length tables; a table
past ten metric columns is split by column group). A table's rows come in tiers, one ``<tbody
data-tier=...>`` each, headed by a ``tr.tier-head`` that names it: published numbers, ocbench
reference runs, the user's runs, and the pipeline check (learned methods trained for seconds).
Every table is sortable by clicking (or Enter/Space on) a header, each tier on its own (rows never
change tier): numbers sort numerically from the cell's ``data-value`` (the raw mean, not the
formatted text), empty / NaN cells stay last in both directions, and each click toggles ascending /
descending (state in the header's ``aria-sort``). Paper rows carry ``class="paper"``, a "paper"
badge, their protocol and their citation.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from .labels import dataset_label
from .tables import Row, Table, neutral_note, tier_title

_CSS = """
:root { --fg:#1d2330; --muted:#5b6475; --line:#d9dee7; --head:#f2f4f8; --paper:#fff7e0; --paper-line:#e6c768;
        --accent:#2456a6; --fail:#b3261e; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; color: var(--fg);
       margin: 0; background: #fff; }
header { padding: 18px 28px 10px; border-bottom: 1px solid var(--line); background: #fafbfd; }
header h1 { margin: 0 0 4px; font-size: 22px; }
header p { margin: 4px 0; color: var(--muted); max-width: 110ch; }
main { padding: 8px 28px 40px; }
nav.toc { padding: 10px 28px; border-bottom: 1px solid var(--line); }
nav.toc ol { margin: 4px 0; padding-left: 20px; columns: 2 320px; }
nav.toc li { margin: 2px 0; break-inside: avoid; }
nav.toc li ul { margin: 0; padding-left: 16px; font-size: 12.5px; }
a { color: var(--accent); text-decoration: none; } a:hover { text-decoration: underline; }
section.dataset { margin-top: 28px; padding-top: 4px; border-top: 2px solid var(--fg); }
section.dataset h2 { font-size: 20px; margin: 10px 0; }
h3 { font-size: 15px; margin: 22px 0 6px; }
figure { margin: 10px 0 16px; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); }
figcaption { color: var(--muted); font-size: 12.5px; }
.table-wrap { overflow-x: auto; }
table.lb { border-collapse: collapse; margin: 4px 0 8px; font-variant-numeric: tabular-nums; }
table.lb th, table.lb td { border-bottom: 1px solid var(--line); padding: 4px 7px; vertical-align: top; }
table.lb th { background: var(--head); text-align: right; cursor: pointer; user-select: none; position: sticky; top: 0;
              vertical-align: bottom; max-width: 8.5em; overflow-wrap: break-word; }
table.lb th:first-child, table.lb td:first-child { text-align: left; min-width: 12em; }
table.lb td .label { white-space: nowrap; }
table.lb td.text { min-width: 11em; max-width: 22em; font-size: 12px; }
table.lb th.text, table.lb td.text { text-align: left; }
table.lb td.num { text-align: right; white-space: nowrap; }
table.lb th::after { content: " \\25B2"; color: transparent; font-size: 11px; }
table.lb th:hover::after { color: #aab; }
table.lb th[aria-sort="ascending"]::after { content: " \\25B2"; color: var(--accent); }
table.lb th[aria-sort="descending"]::after { content: " \\25BC"; color: var(--accent); }
table.lb th .better { color: var(--muted); font-weight: normal; font-size: 11px; }
table.lb tbody tr:hover { background: #f4f7ff; }
table.lb tr.paper { background: var(--paper); font-style: italic; }
table.lb tr.paper td:first-child { border-left: 4px solid var(--paper-line); }
table.lb tr.paper:hover { background: #fff0c2; }
table.lb tr.tier-head th { background: #fff; text-align: left; cursor: default; position: static; white-space: normal;
                           border-bottom: 1px solid var(--fg); padding-top: 12px; font-weight: normal; }
table.lb tr.tier-head th::after { content: none; }
table.lb tr.tier-head .tier-title { font-weight: 700; margin-right: 8px; }
table.lb tr.tier-head .tier-note { color: var(--muted); font-size: 12px; }
table.lb tbody[data-tier="reference"] td:first-child { border-left: 4px solid var(--accent); }
table.lb tbody[data-tier="pipeline"] tr { color: var(--muted); }
table.lb tbody[data-tier="pipeline"] td:first-child { border-left: 4px dashed var(--line); }
.badge { display: inline-block; font-style: normal; font-size: 10.5px; font-weight: 600; letter-spacing: .03em;
         text-transform: uppercase; padding: 0 5px; border-radius: 3px; background: var(--paper-line); color: #3d2e00;
         margin-right: 6px; vertical-align: 1px; }
.meta { color: var(--muted); font-size: 12px; font-style: normal; max-width: 60ch; white-space: normal; }
.failed { color: var(--fail); }
ul.failures { color: var(--fail); font-size: 12.5px; margin: 2px 0 10px; }
footer { color: var(--muted); font-size: 12px; padding: 16px 28px; border-top: 1px solid var(--line); }
"""

# Sorting: numbers by data-value; empty/NaN always last; stable (ties keep the current order).
_JS = """
(function () {
  function key(row, idx, numeric) {
    var cell = row.cells[idx];
    if (!cell) return null;
    var raw = cell.getAttribute('data-value');
    if (numeric) {
      if (raw === null || raw === '') return null;
      var x = parseFloat(raw);
      return isFinite(x) ? x : null;
    }
    var t = (raw !== null ? raw : cell.textContent).trim().toLowerCase();
    return t === '' ? null : t;
  }
  function sortBy(th) {
    var table = th.closest('table');
    var idx = Array.prototype.indexOf.call(th.parentNode.children, th);
    var numeric = th.getAttribute('data-type') === 'num';
    var dir = th.getAttribute('aria-sort') === 'ascending' ? 'descending' : 'ascending';
    table.querySelectorAll('thead th').forEach(function (h) { h.removeAttribute('aria-sort'); });
    th.setAttribute('aria-sort', dir);
    var sign = dir === 'ascending' ? 1 : -1;
    Array.prototype.forEach.call(table.tBodies, function (body) {  // each tier sorts on its own
      var rows = Array.prototype.slice.call(body.rows).filter(function (r) { return !r.classList.contains('tier-head'); })
        .map(function (r, i) { return [r, key(r, idx, numeric), i]; });
      rows.sort(function (a, b) {
        if (a[1] === null || b[1] === null) {
          if (a[1] === null && b[1] === null) return a[2] - b[2];
          return a[1] === null ? 1 : -1;
        }
        var c = numeric ? a[1] - b[1] : a[1].localeCompare(b[1]);
        return c !== 0 ? sign * c : a[2] - b[2];
      });
      rows.forEach(function (r) { body.appendChild(r[0]); });
    });
  }
  document.querySelectorAll('table.sortable thead th').forEach(function (th) {
    th.tabIndex = 0;
    th.title = 'Sort by this column (click again to reverse)';
    th.addEventListener('click', function () { sortBy(th); });
    th.addEventListener('keydown', function (e) {
      if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); sortBy(th); }
    });
  });
})();
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _num_attr(x: float | None) -> str:
    return "" if x is None or not math.isfinite(x) else repr(float(x))


def _img_tag(path: Path, alt: str) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    return f'<img src="data:image/png;base64,{data}" alt="{_e(alt)}">'


def _row_html(row: Row, table: Table) -> str:
    cls = ' class="paper" data-source="paper"' if row.source == "paper" else ' data-source="ocbench"'
    cls += f' data-tier="{_e(row.tier)}"'
    if row.source == "paper":
        # protocol and seeds are in the label; the citation goes to the source column, notes below
        meta = f'<div class="meta">{_e(row.notes)}</div>' if row.notes else ""
        first = (
            f'<td data-value="{_e(row.label)}"><span class="badge">paper</span>'
            f'<span class="label">{_e(row.label)}</span>{meta}</td>'
        )
    else:
        first = f'<td data-value="{_e(row.label)}"><span class="label">{_e(row.label)}</span></td>'
    cells = [first]
    for c in table.columns:
        cell = row.cells.get(c.key)
        if cell is None:
            cells.append('<td class="num" data-value="">—</td>')
        else:
            cells.append(f'<td class="num" data-value="{_num_attr(cell.mean)}">{_e(cell.text)}</td>')
    runs_cls = " failed" if row.n_failed else ""
    n_ok = "" if row.source == "paper" else str(row.n_ok)
    cells.append(f'<td class="num{runs_cls}" data-value="{n_ok}">{_e(row.runs)}</td>')
    cells.append(
        f'<td class="num" data-value="{_num_attr(row.train_seconds)}">'
        f"{'—' if not math.isfinite(row.train_seconds) else f'{row.train_seconds:.1f}'}</td>"
    )
    # ocbench rows: profile, device, steps done / scheduled and seeds (their tier heading says what they are)
    src = (
        (row.citation or "paper")
        if row.source == "paper"
        else f"{row.profile} profile" + (f" · {row.meta}" if row.meta else "")
    )
    cells.append(f'<td class="text">{_e(src)}</td>')
    return f"<tr{cls}>" + "".join(cells) + "</tr>"


def _table_html(t: Table) -> str:
    head = ['<th data-type="text" class="text">method</th>']
    for c in t.columns:
        better = f' <span class="better">{c.arrow}</span>' if c.arrow else ""
        label = _e(c.header).replace("_", "_<wbr>")  # a key such as semantic_macc may wrap at its underscores
        head.append(f'<th data-type="num" data-metric="{_e(c.key)}">{label}{better}</th>')
    head += [
        '<th data-type="num">runs</th>',
        '<th data-type="num">train (s)</th>',
        '<th data-type="text" class="text">source</th>',
    ]
    bodies = []
    for tier, rows in t.bands():
        name, note = tier_title(tier, sorted({r.profile for r in rows if r.profile}))
        band = (
            f'<tr class="tier-head"><th scope="rowgroup" colspan="{len(head)}"><span class="tier-title">'
            f'{_e(name)}</span><span class="tier-note">{_e(note)}</span></th></tr>'
        )
        bodies.append(
            f'<tbody data-tier="{_e(tier)}">\n{band}\n' + "\n".join(_row_html(r, t) for r in rows) + "\n</tbody>"
        )
    out = [
        f'<h3 id="{_e(t.anchor)}">{_e(dataset_label(t.dataset))} · {_e(t.title)}</h3>',
        '<div class="table-wrap"><table class="lb sortable" data-dataset="{}" data-variant="{}" data-split="{}" '
        'data-kind="{}" data-group="{}">'.format(
            _e(t.dataset), _e(t.variant), _e(t.split), _e(t.kind), _e(t.group or "")
        ),
        "<thead><tr>" + "".join(head) + "</tr></thead>",
        "\n".join(bodies) + "</table></div>",
    ]
    if t.failed:
        items = "".join(
            f"<li>{_e(m)} seed {s}: <code>{_e(' '.join(str(e).split())[:300])}</code></li>" for m, s, e in t.failed
        )
        out.append(f'<ul class="failures" aria-label="failed runs">{items}</ul>')
    return "\n".join(out)


def render_html(
    tables: Mapping[str, Sequence[Table]],
    *,
    title: str = "ocbench leaderboard",
    summary: str = "",
    figures: Mapping[str, Sequence[Path]] | None = None,
) -> str:
    """The whole page as a string (figures are embedded as base64 PNG data URIs)."""
    figures = figures or {}
    toc = []
    for ds, tbls in tables.items():
        entries: dict[tuple, list[Table]] = {}
        for t in tbls:
            entries.setdefault((t.variant, t.split, t.kind, t.metric), []).append(t)
        subs = ""
        for parts in entries.values():
            if parts[0].group is None:
                subs += f'<li><a href="#{_e(parts[0].anchor)}">{_e(parts[0].title)}</a></li>'
            else:  # "binary · test: segmentation | tracking | reconstruction"
                base = parts[0].title.rsplit(" · ", 1)[0]
                links = " | ".join(f'<a href="#{_e(t.anchor)}">{_e(t.group)}</a>' for t in parts)
                subs += f"<li>{_e(base)}: {links}</li>"
        toc.append(f'<li><a href="#ds-{_e(ds)}">{_e(dataset_label(ds))}</a><ul>{subs}</ul></li>')
    sections = []
    for ds, tbls in tables.items():
        parts = [
            f'<section class="dataset" id="ds-{_e(ds)}" data-dataset="{_e(ds)}">',
            f"<h2>{_e(dataset_label(ds))}</h2>",
        ]
        for fig in figures.get(ds, ()):
            # the file name starts with its kind (figures.py); the rest is a safe form of the dataset name
            kind = next(
                (k.replace("_", " ") for k in ("bars", "by_length", "by_count") if Path(fig).name.startswith(k + "_")),
                "figure",
            )
            parts.append(
                f"<figure>{_img_tag(Path(fig), f'{dataset_label(ds)}: {kind}')}"
                f"<figcaption>{_e(dataset_label(ds))}: {_e(kind)} ({_e(Path(fig).name)})</figcaption></figure>"
            )
        parts += [_table_html(t) for t in tbls]
        parts.append("</section>")
        sections.append("\n".join(parts))
    note = (
        "Each table has up to four tiers, each under its own heading: <strong>Published</strong> (the papers' numbers; "
        'rows with a <span class="badge">paper</span>badge, their protocol and source; P320 = over the first '
        "320 test images), <strong>ocbench reference runs</strong> (the paper profile, trained on a GPU; device, steps "
        "done / scheduled and seeds in the source column), <strong>Your runs</strong> and <strong>Pipeline check</strong> (learned "
        "methods trained for seconds under a short profile: proof that the pipeline runs, not a result; "
        "left out of the figures). Cells: mean ± sample std over seeds (fractions such as ARI, IoU, MOTA and "
        "accuracies in %, MSE and LPIPS raw; each metric's label, unit and direction as its records state "
        "them); “n=1” marks one seed; ↑/↓ say which direction is "
        "better. Click a column header to sort within each tier."
    )
    if neutral_note(tables):
        note += " " + _e(neutral_note(tables))
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{_e(title)}</title>
<style>{_CSS}</style>
</head>
<body>
<header>
<h1>{_e(title)}</h1>
<p>{_e(summary)}</p>
<p>{note}</p>
</header>
<nav class="toc" aria-label="contents"><strong>Datasets</strong><ol>{"".join(toc) or "<li>No runs recorded yet.</li>"}</ol></nav>
<main>
{chr(10).join(sections)}
</main>
<footer>Generated by ocbench.leaderboard from the results store; self-contained page (no network access).</footer>
<script>{_JS}</script>
</body>
</html>
"""
