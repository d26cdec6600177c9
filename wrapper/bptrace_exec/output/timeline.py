"""A run as a picture (--timeline FILE.svg), as systemd-analyze plot draws a boot: one bar
per process on a time axis, from its first program traced to its end, each right under
its parent (a thin line from the parent's bar to where the child began), coloured by how
it ended, labelled with its program; the whole argv, pid, lifetime and end in a tooltip."""

from __future__ import annotations

from collections.abc import Iterator
from html import escape  # & < > and quotes: what text in SVG needs

from bptrace_exec.output.text import iso_time, safe_str
from bptrace_exec.output.tree import Proc, command_line

WIDTH = 1400  # px: the time axis and the margins
MARGIN, TOP = 12, 64  # left and right margin; the title, legend and axis above the bars
LABEL = 90  # characters of a bar's label; the tooltip has all of it
CHAR = 0.62  # a monospace character's width, in font sizes
# How a process ended: its bar's colour, and its name in the legend.
ENDS = {"ok": ("#7cb342", "exit 0"), "failed": ("#e53935", "exit status, or a failed exec"),
        "killed": ("#fb8c00", "killed by a signal"), "running": ("#90a4ae", "running at the end"),
        "unknown": ("#d7ccc8", "end unknown (filtered)")}
STEPS = (1, 2, 5)  # tick steps, times a power of ten


def ended_as(p: Proc) -> str:
    if p.signal:
        return "killed"
    if p.status is None:
        return "running" if p.ends_kept else "unknown"
    return "failed" if p.failed else "ok"


def _rows(roots: list[Proc]) -> Iterator[Proc]:
    """Each process, its children right under it (however deep: no recursion)."""
    stack = list(reversed(roots))
    while stack:
        p = stack.pop()
        yield p
        stack.extend(reversed(p.children))


def _began(ordered: list[Proc]) -> dict[int, int]:
    """When each process's bar begins (by id), of processes each before its children:
    its first program traced, else its start; one never seen itself
    (tree.with_unseen_parents' `(sh)`) from its first child's."""
    began: dict[int, int] = {}
    for p in reversed(ordered):  # children before their parent
        ns = p.began_ns if p.began_ns is not None else min(
            (began[id(c)] for c in p.children if id(c) in began), default=None)
        if ns is not None:
            began[id(p)] = ns
    return began


def _tick_ns(span_ns: int) -> int:
    """A round step that gives about ten ticks."""
    power = 1
    while True:
        for step in STEPS:
            if span_ns / (step * power) <= 10:
                return step * power
        power *= 10


def _duration(ns: int) -> str:
    return f"{ns / 1e9:.3g} s" if ns >= 1_000_000_000 else f"{ns / 1e6:.3g} ms"


def svg(roots: list[Proc], first_ns: int, last_ns: int, title: str) -> str:
    """The picture of the processes under `roots` over the run's events, first_ns to
    last_ns (wall clock): one that started before is drawn from first_ns, one still
    running to last_ns."""
    ordered = list(_rows(roots))
    began = _began(ordered)
    rows = [p for p in ordered if id(p) in began]
    row = 16 if len(rows) <= 500 else 10  # thousands stay a scroll, not a poster
    start, end = first_ns, max(last_ns, first_ns + 1)
    now_ns = end
    scale = (WIDTH - 2 * MARGIN) / (end - start)
    height = TOP + row * len(rows) + MARGIN

    def x(ns: int) -> float:
        return MARGIN + (ns - start) * scale
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
           f'viewBox="0 0 {WIDTH} {height}" font-family="monospace" font-size="{row - 5}">',
           f'<rect width="{WIDTH}" height="{height}" fill="#ffffff"/>',
           f'<text x="{MARGIN}" y="16" font-size="14" font-weight="bold">'
           f'{escape(safe_str(title))}: '
           f'{len(rows)} processes in {_duration(end - start)} from '
           f'{iso_time(start)}</text>']
    for i, (colour, meaning) in enumerate(ENDS.values()):
        out.append(f'<rect x="{MARGIN + 250 * i}" y="24" width="10" height="10" '
                   f'fill="{colour}"/><text x="{MARGIN + 250 * i + 14}" y="33" '
                   f'font-size="11">{escape(meaning)}</text>')
    step = _tick_ns(end - start)
    for k in range(int((end - start) // step) + 1):
        at = x(start + k * step)
        anchor = ' text-anchor="end"' if at > WIDTH - 80 else ""  # the last, inside
        out.append(f'<line x1="{at:.1f}" y1="{TOP - 8}" x2="{at:.1f}" y2="{height}" '
                   f'stroke="#e0e0e0"/><text x="{at + 2:.1f}" y="{TOP - 10}"{anchor} '
                   f'font-size="10" fill="#616161">{_duration(k * step)}</text>')
    place = {id(p): i for i, p in enumerate(rows)}
    for i, p in enumerate(rows):
        y, left = TOP + i * row, x(max(began[id(p)], start))
        width = max(1.0, x(now_ns if p.ended_ns is None else p.ended_ns) - left)
        colour = ENDS[ended_as(p)][0]
        command = command_line(p)
        label = command if len(command) <= LABEL else command[:LABEL - 1] + "\u2026"
        life = "-" if p.lifetime_ns is None else _duration(p.lifetime_ns)
        tip = f"{command}\npid {p.pid}, {life}, {p.end()}" + (
            f", {p.failed_execs} failed exec(s)" if p.failed_execs else "") + (
            ", not traced itself: it forked the processes under it" if p.began_ns is None
            else "")
        for child in p.children:  # where each child began, from this bar
            if id(child) in place:
                cx = x(max(began[id(child)], start))
                cy = TOP + place[id(child)] * row + row / 2
                out.append(f'<line x1="{cx:.1f}" y1="{y + row - 2}" x2="{cx:.1f}" '
                           f'y2="{cy:.1f}" stroke="#bdbdbd"/>')
        # after the bar, else before it, else over it: where it fits
        text = len(label) * CHAR * (row - 5)
        place_at = (f'x="{left + width + 4:.1f}"' if left + width + 4 + text <= WIDTH
                    else f'x="{left - 4:.1f}" text-anchor="end"' if left - 4 >= text
                    else f'x="{left + 2:.1f}"')
        out.append(f'<g><title>{escape(tip)}</title>'
                   f'<rect x="{left:.1f}" y="{y + 1}" width="{width:.1f}" height="{row - 3}" '
                   f'fill="{colour}"/><text {place_at} y="{y + row - 4}">'
                   f'{escape(label)}</text></g>')
    out.append("</svg>")
    return "\n".join(out) + "\n"

