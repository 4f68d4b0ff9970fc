"""Small server-rendered SVG charts for the metrics page: no JavaScript, no image files.

Every label passes through :func:`markupsafe.escape` (queue names and reason codes come from
configuration, but a chart must never become a way to inject markup). Colours are SVG
presentation attributes, which the console's Content-Security-Policy allows.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from markupsafe import Markup, escape

BAR_COLOUR = "#2f6f9f"
SERIES_COLOURS: dict[str, str] = {
    "approve": "#2e7d32",
    "edit": "#1565c0",
    "reject": "#c62828",
    "escalate": "#ef6c00",
}
_FALLBACK_COLOURS = ("#6a1b9a", "#00838f", "#5d4037", "#546e7a")


def _number(value: float) -> str:
    return f"{value:g}"


def horizontal_bars(
    title: str,
    items: Sequence[tuple[str, float]],
    *,
    maximum: float | None = None,
    label: Callable[[float], str] = _number,
    width: int = 520,
) -> Markup:
    """One bar per item, labelled with its name and formatted value."""
    row, left, right = 26, 170, 70
    height = 30 + row * max(len(items), 1)
    top = max((value for _, value in items), default=0.0)
    scale_max = maximum if maximum is not None else top
    span = width - left - right
    parts = [
        f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" role="img" '
        f'aria-label="{escape(title)}"><title>{escape(title)}</title>'
    ]
    if not items:
        parts.append(
            '<text x="10" y="40" font-size="13" fill="#555">Nothing to show yet</text></svg>'
        )
        return Markup("".join(parts))
    for index, (name, value) in enumerate(items):
        y = 20 + index * row
        length = 0 if scale_max <= 0 else max(0.0, min(value / scale_max, 1.0)) * span
        parts.append(
            f'<text x="{left - 8}" y="{y + 14}" font-size="13" text-anchor="end" '
            f'fill="#222">{escape(name)}</text>'
            f'<rect x="{left}" y="{y}" width="{length:.1f}" height="18" fill="{BAR_COLOUR}">'
            f"<title>{escape(name)}: {escape(label(value))}</title></rect>"
            f'<text x="{left + length + 6:.1f}" y="{y + 14}" font-size="13" fill="#222">'
            f"{escape(label(value))}</text>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def stacked_columns(
    title: str,
    categories: Sequence[str],
    series: Mapping[str, Sequence[int]],
    *,
    width: int = 620,
    height: int = 240,
) -> Markup:
    """One column per category (e.g. a day), stacked by series (e.g. review decision)."""
    left, bottom, top_pad, legend = 40, 40, 16, 22
    totals = [sum(values[i] for values in series.values()) for i in range(len(categories))]
    peak = max(totals, default=0)
    parts = [
        f'<svg class="chart" xmlns="http://www.w3.org/2000/svg" width="{width}" '
        f'height="{height + legend}" viewBox="0 0 {width} {height + legend}" role="img" '
        f'aria-label="{escape(title)}"><title>{escape(title)}</title>'
    ]
    if not categories or peak == 0:
        parts.append(
            '<text x="10" y="40" font-size="13" fill="#555">Nothing to show yet</text></svg>'
        )
        return Markup("".join(parts))
    plot_height = height - bottom - top_pad
    slot = (width - left - 10) / len(categories)
    bar = max(min(slot * 0.7, 60.0), 2.0)
    # Labels about 80 px apart at most, so a long period does not print them on each other.
    label_every = max(1, round(80 / slot))
    colours = {
        name: SERIES_COLOURS.get(name, _FALLBACK_COLOURS[i % len(_FALLBACK_COLOURS)])
        for i, name in enumerate(series)
    }
    parts.append(
        f'<line x1="{left}" y1="{height - bottom}" x2="{width - 10}" '
        f'y2="{height - bottom}" stroke="#999"/>'
        f'<text x="{left - 6}" y="{top_pad + 10}" font-size="11" text-anchor="end" '
        f'fill="#555">{peak}</text>'
    )
    for index, category in enumerate(categories):
        x = left + index * slot + (slot - bar) / 2
        base = float(height - bottom)
        for name, values in series.items():
            count = values[index]
            if not count:
                continue
            size = count / peak * plot_height
            base -= size
            parts.append(
                f'<rect x="{x:.1f}" y="{base:.1f}" width="{bar:.1f}" '
                f'height="{size:.1f}" fill="{colours[name]}"><title>'
                f"{escape(category)}: {count} {escape(name)}</title></rect>"
            )
        if index % label_every == 0:
            parts.append(
                f'<text x="{x + bar / 2:.1f}" y="{height - bottom + 16}" '
                f'font-size="11" text-anchor="middle" fill="#222">'
                f"{escape(category)}</text>"
            )
    x = float(left)
    for name, colour in colours.items():
        parts.append(
            f'<rect x="{x:.0f}" y="{height + 4}" width="12" height="12" '
            f'fill="{colour}"/><text x="{x + 16:.0f}" y="{height + 14}" '
            f'font-size="12" fill="#222">{escape(name)}</text>'
        )
        x += 24 + 8 * len(name)
    parts.append("</svg>")
    return Markup("".join(parts))
