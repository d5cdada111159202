"""The pieces of a self-contained HTML page: its style, its Content-Security-Policy (load nothing
from anywhere), and small builders that HTML-escape every piece of text that comes from outside."""

import base64
import html
import math

CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"

STYLE = """
:root { --ink: #1d2330; --muted: #5b6475; --line: #e3e6ec; --soft: #f6f7f9; --accent: #2f6fde; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--ink); background: #fff;
       font: 15px/1.5 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 980px; margin: 0 auto; padding: 28px 22px 60px; }
header { border-bottom: 2px solid var(--ink); padding-bottom: 10px; margin-bottom: 8px; }
h1 { font-size: 26px; margin: 0; word-break: break-all; }
.sub { color: var(--muted); font-size: 13px; }
h2 { font-size: 18px; margin: 34px 0 10px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
.cards { display: grid; grid-template-columns: repeat(var(--cols), minmax(0, 1fr)); gap: 10px; }
.cols-1 { --cols: 1; } .cols-2 { --cols: 2; } .cols-3 { --cols: 3; } .cols-4 { --cols: 4; } .cols-5 { --cols: 5; }
@media (max-width: 760px) { .cards { grid-template-columns: repeat(auto-fill, minmax(150px, 1fr)); } }
.card { background: var(--soft); border: 1px solid var(--line); border-radius: 8px; padding: 9px 12px; }
.card .k { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
.card .v { font-size: 19px; font-weight: 600; font-variant-numeric: tabular-nums; overflow-wrap: anywhere; }
.card .n { color: var(--muted); font-size: 12px; }
pre { background: #10141c; color: #e8ecf3; padding: 12px 14px; border-radius: 8px; overflow-x: auto;
      font: 13px/1.45 ui-monospace, "SF Mono", Menlo, Consolas, monospace; white-space: pre-wrap;
      overflow-wrap: anywhere; }
pre .arg { white-space: nowrap; }
table { border-collapse: collapse; font-size: 14px; font-variant-numeric: tabular-nums; }
th, td { text-align: left; padding: 4px 14px 4px 0; border-bottom: 1px solid var(--line); vertical-align: top; }
th { color: var(--muted); font-weight: 600; }
.tables { display: flex; flex-wrap: wrap; gap: 40px; }
.tables h3 { font-size: 14px; margin: 0 0 4px; }
figure { margin: 8px 0 22px; }
figure img { display: block; max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: 6px; }
figcaption { color: var(--muted); font-size: 13px; margin-top: 6px; max-width: 820px; }
.samples { columns: 3 190px; column-gap: 24px; font-family: ui-monospace, Menlo, Consolas, monospace; }
.samples div { break-inside: avoid; padding: 2px 0; }
.mark { display: inline-block; min-width: 44px; text-align: center; font: 600 11px/1.6 sans-serif;
        border-radius: 9px; padding: 0 6px; margin-right: 8px; }
.mark-new { background: #dff5e3; color: #17692b; }
.mark-train { background: #fde8cf; color: #8a4b00; }
.mark-val { background: #e2ebfb; color: #1e4fa8; }
.mark-other { background: var(--line); color: var(--muted); }
.mark-right { background: #dff5e3; color: #17692b; }
.mark-wrong { background: #fbe2e2; color: #a11d1d; }
.note { color: var(--muted); font-size: 13px; }
footer { margin-top: 40px; color: var(--muted); font-size: 12px; }
"""


MARKS = ("new", "train", "val", "right", "wrong")  # the sample marks with a colour of their own


def esc(value):
    return html.escape(str(value), quote=True)


def num(v, digits=4):
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, int):
        return f"{v:,}"
    if not math.isfinite(v):
        return str(v)
    return f"{v:.{digits}f}" if 1e-3 <= abs(v) < 1e5 or v == 0 else f"{v:.3g}"


def duration(seconds):
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.2f} h"


def img(png, alt):
    return f'<img src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}" alt="{esc(alt)}">'


def figure(png, alt, caption):
    return f"<figure>{img(png, alt)}<figcaption>{caption}</figcaption></figure>"


def table(rows, head=None):
    out = ["<table>"]
    if head:
        out.append("<tr>" + "".join(f"<th>{esc(h)}</th>" for h in head) + "</tr>")
    for row in rows:
        out.append("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in row) + "</tr>")
    return "".join(out) + "</table>"


def card(key, value, note=""):
    return (f'<div class="card"><div class="k">{esc(key)}</div><div class="v">{esc(value)}</div>'
            + (f'<div class="n">{esc(note)}</div>' if note else "") + "</div>")


def cards_grid(cards, widest=5):
    """The summary cards in as few rows as `widest` columns allow, the columns chosen so that the
    rows are as even as they can be (11 cards: 4 + 4 + 3, not 5 + 5 + 1)."""
    rows = max(1, math.ceil(len(cards) / widest))
    return f'<div class="cards cols-{max(1, math.ceil(len(cards) / rows))}">{"".join(cards)}</div>'


def command_block(text):
    """A command in a <pre>, each option kept on one line with its value (--batch-size 4 is never
    split across two lines; the lines break between options)."""
    lines = []
    for line in text.split("\n"):
        words, groups = line.split(" "), []
        for w in words:
            if groups and groups[-1].startswith("-") and " " not in groups[-1] and w and not w.startswith("-"):
                groups[-1] += " " + w
            else:
                groups.append(w)
        lines.append(" ".join(f'<span class="arg">{esc(g)}</span>' for g in groups))
    return "<pre>" + "\n".join(lines) + "</pre>"
