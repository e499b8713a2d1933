"""A small SVG writer for the training plots: escaping, text width, ticks, axes.

API: :func:`escape`, :func:`clip`, :func:`text_width`, :func:`nice_ticks`,
:func:`tick_labels`, :func:`labels_width`, :func:`padded`, :func:`num`,
:class:`Svg`, :class:`Frame`.

Everything here builds strings; nothing draws or measures through a font library. Text
width is an upper estimate from per-character widths of DejaVu Sans, the first font the
plots ask for (and wider than the fallbacks), so that margins computed from it hold text.
Coordinates are written with one decimal, so the same input always gives the same bytes.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

FONT = "DejaVu Sans,Verdana,Geneva,sans-serif"
#: Code points XML 1.0 forbids; left in, they make the whole file unreadable.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_NARROW = set("iIjl.,:;'!|`()[]{}")
_SEMI = set('frt -/\\"*')
_WIDE = set("mwMW@%&")


def escape(text: object) -> str:
    """``text`` as XML character data or attribute value: markup-free and well formed."""
    s = _NOT_XML.sub("\ufffd", str(text))
    s = s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return s.replace('"', "&quot;").replace("'", "&#39;")


def clip(text: object, max_chars: int) -> str:
    """``text`` cut to ``max_chars`` characters, the cut marked with an ellipsis."""
    s = str(text)
    return s if len(s) <= max_chars else s[: max_chars - 1] + "\u2026"


def _char_em(c: str) -> float:
    if c in _NARROW:
        return 0.32
    if c in _SEMI:
        return 0.42
    if c in _WIDE:
        return 1.0
    if c.isupper():
        return 0.78
    if c.isascii():
        return 0.64
    return 1.0 if unicodedata.east_asian_width(c) in "WF" else 0.8


def text_width(text: object, size: float) -> float:
    """Width in pixels of ``text`` at font ``size`` (an upper estimate)."""
    return size * sum(_char_em(c) for c in str(text))


def num(v: float) -> str:
    """A coordinate: one decimal, no trailing ``.0``, never ``-0``."""
    s = f"{v:.1f}"
    s = s[:-2] if s.endswith(".0") else s
    return "0" if s == "-0" else s


def nice_ticks(lo: float, hi: float, count: int = 7) -> list[float]:
    """At most ``count + 1`` round values (steps of 1, 2, 2.5 or 5 × 10ⁿ) within ``[lo, hi]``."""
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        return [lo] if math.isfinite(lo) else []
    raw = (hi - lo) / max(1, count)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    first = math.ceil(lo / step - 1e-9)
    last = math.floor(hi / step + 1e-9)
    return [round(i * step, 12) for i in range(first, last + 1)]


def tick_labels(ticks: Sequence[float]) -> list[str]:
    """Tick values as short text, all with the fewest decimals that write each exactly."""
    if not ticks:
        return []
    step = ticks[1] - ticks[0] if len(ticks) > 1 else abs(ticks[0]) or 1.0
    if max(abs(t) for t in ticks) >= 1e6 or step < 1e-4:
        return [f"{t:.3g}" for t in ticks]
    decimals = 0
    while decimals < 6 and any(abs(float(f"{t:.{decimals}f}") - t) > step * 1e-6 for t in ticks):
        decimals += 1
    return [s.lstrip("-") if float(s) == 0 else s for s in (f"{t:.{decimals}f}" for t in ticks)]


def labels_width(labels: Iterable[object], size: float) -> float:
    """Width in pixels of the widest of ``labels`` at font ``size`` (0 when there are none)."""
    return max((text_width(label, size) for label in labels), default=0.0)


def padded(lo: float, hi: float, share: float = 0.05) -> tuple[float, float]:
    """``[lo, hi]`` widened by ``share`` of its span each side (by 1 when it is a point)."""
    span = hi - lo
    if span <= 0:
        pad = abs(lo) * share or 1.0
        return lo - pad, hi + pad
    return lo - span * share, hi + span * share


class Svg:
    """An SVG document built element by element; :meth:`render` returns the text."""

    def __init__(self, width: float, height: float, size: float = 11.0) -> None:
        self.width, self.height, self.size = width, height, size
        self.parts: list[str] = []

    def add(self, element: str) -> None:
        self.parts.append(element)

    def text(
        self,
        x: float,
        y: float,
        text: object,
        *,
        size: float | None = None,
        anchor: str = "middle",
        rotate: float = 0.0,
        fill: str | None = None,
        bold: bool = False,
        tooltip: object | None = None,
    ) -> None:
        """Text whose baseline starts, centres or ends (``anchor``) at ``(x, y)``."""
        attrs = f'x="{num(x)}" y="{num(y)}"'
        if anchor != "start":
            attrs += f' text-anchor="{anchor}"'
        if size is not None and size != self.size:
            attrs += f' font-size="{num(size)}"'
        if rotate:
            attrs += f' transform="rotate({num(rotate)} {num(x)} {num(y)})"'
        if fill:
            attrs += f' fill="{fill}"'
        if bold:
            attrs += ' font-weight="bold"'
        body = escape(text)
        if tooltip is not None and str(tooltip) != str(text):
            body = f"<title>{escape(tooltip)}</title>{body}"
        self.add(f"<text {attrs}>{body}</text>")

    def line(self, x1: float, y1: float, x2: float, y2: float, style: str) -> None:
        self.add(f'<line x1="{num(x1)}" y1="{num(y1)}" x2="{num(x2)}" y2="{num(y2)}" {style}/>')

    def rect(self, x: float, y: float, w: float, h: float, style: str, tooltip: str = "") -> None:
        attrs = f'x="{num(x)}" y="{num(y)}" width="{num(w)}" height="{num(h)}" {style}'
        if tooltip:
            self.add(f"<rect {attrs}><title>{escape(tooltip)}</title></rect>")
        else:
            self.add(f"<rect {attrs}/>")

    def polyline(self, points: Iterable[tuple[float, float]], style: str) -> None:
        coords = " ".join(f"{num(x)},{num(y)}" for x, y in points)
        self.add(f'<polyline points="{coords}" fill="none" {style}/>')

    def render(self) -> str:
        w, h = num(self.width), num(self.height)
        head = (
            f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
            f'viewBox="0 0 {w} {h}" font-family="{FONT}" font-size="{num(self.size)}">\n'
            f'<rect width="{w}" height="{h}" fill="#fff"/>\n'
        )
        return head + "\n".join(self.parts) + "\n</svg>\n"


@dataclass(frozen=True)
class Frame:
    """A plot area at ``(left, top)`` of ``width`` × ``height`` pixels over a data domain."""

    left: float
    top: float
    width: float
    height: float
    x_domain: tuple[float, float]
    y_domain: tuple[float, float]

    def x(self, v: float) -> float:
        lo, hi = self.x_domain
        return self.left + (v - lo) / (hi - lo) * self.width

    def y(self, v: float) -> float:
        lo, hi = self.y_domain
        return self.top + self.height - (v - lo) / (hi - lo) * self.height

    def axes(
        self, svg: Svg, title: str, x_label: str, y_label: str, *, y_ticks: bool = True
    ) -> None:
        """Grid, frame, ticks with labels, axis labels and title around the plot area."""
        right, bottom = self.left + self.width, self.top + self.height
        xt = [t for t in nice_ticks(*self.x_domain) if self.x_domain[0] <= t <= self.x_domain[1]]
        for t, label in zip(xt, tick_labels(xt), strict=True):
            x = self.x(t)
            svg.line(x, self.top, x, bottom, 'stroke="#eee"')
            svg.line(x, bottom, x, bottom + 4, 'stroke="#333"')
            svg.text(x, bottom + 16, label)
        if y_ticks:
            yt = nice_ticks(*self.y_domain)
            for t, label in zip(yt, tick_labels(yt), strict=True):
                y = self.y(t)
                svg.line(self.left, y, right, y, 'stroke="#eee"')
                svg.line(self.left - 4, y, self.left, y, 'stroke="#333"')
                svg.text(self.left - 7, y + 4, label, anchor="end")
        svg.rect(self.left, self.top, self.width, self.height, 'fill="none" stroke="#333"')
        self.labels(svg, title, x_label, y_label)

    def labels(self, svg: Svg, title: str, x_label: str, y_label: str) -> None:
        """Title above the area, x label at the bottom edge, y label turned at the left edge."""
        mid_x = self.left + self.width / 2
        svg.text(mid_x, self.top - 12, title, size=14, bold=True)
        svg.text(mid_x, svg.height - 10, x_label, size=12)
        mid_y = self.top + self.height / 2
        svg.text(18, mid_y, y_label, size=12, rotate=-90)
