"""The metrics page's SVG charts: correct proportions, and labels that stay text."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ElementTree

from mediavault.agent.web.charts import horizontal_bars, stacked_columns


def _bar_widths(svg: str) -> list[float]:
    return [float(w) for w in re.findall(r'<rect x="170" y="\d+" width="([\d.]+)"', svg)]


def test_bars_are_proportional_and_labelled() -> None:
    svg = str(horizontal_bars("Escalations by queue", [("billing", 4.0), ("tier2_legal", 2.0)]))
    ElementTree.fromstring(svg)  # well-formed SVG
    widths = _bar_widths(svg)
    assert widths[0] == 2 * widths[1] > 0
    assert ">billing<" in svg and ">4<" in svg


def test_rates_are_drawn_against_a_fixed_maximum() -> None:
    svg = str(
        horizontal_bars("Rates", [("deflection", 0.5)], maximum=1.0, label=lambda v: f"{v:.0%}")
    )
    assert _bar_widths(svg) == [140.0]  # half of the 280 px span
    assert ">50%<" in svg


def test_labels_cannot_inject_markup() -> None:
    hostile = '<script>alert(1)</script>"'
    for svg in (
        str(horizontal_bars(hostile, [(hostile, 1.0)])),
        str(stacked_columns(hostile, [hostile], {hostile: [3]})),
    ):
        ElementTree.fromstring(svg)
        assert "<script>" not in svg
        assert "&lt;script&gt;" in svg


def test_stacked_columns_add_up_per_day_and_say_when_empty() -> None:
    svg = str(
        stacked_columns(
            "Review outcomes", ["03-01", "03-02"], {"approve": [2, 0], "reject": [2, 1]}
        )
    )
    ElementTree.fromstring(svg)
    heights = [float(h) for h in re.findall(r'height="([\d.]+)" fill="#(?:2e7d32|c62828)">', svg)]
    # Day one (2 + 2) is the peak: its two segments fill the plot; day two's one is a quarter.
    assert heights == [92.0, 92.0, 46.0]
    assert "Nothing to show yet" in str(stacked_columns("Empty", [], {}))
    assert "Nothing to show yet" in str(horizontal_bars("Empty", []))
