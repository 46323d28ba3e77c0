"""
The console's two themes: shiptrack-dark and shiptrack-light (f2 switches). Levels use the
theme's $success / $warning / $error, so both read well; NO_COLOR turns colour off entirely.
"""

from __future__ import annotations

from textual.theme import Theme

DARK = Theme(
    name="shiptrack-dark",
    primary="#5FA8D3",
    secondary="#62B6CB",
    accent="#7FD1F7",
    success="#7BC96F",
    warning="#F2C14E",
    error="#F25F5C",
    foreground="#E0E6EB",
    background="#12161B",
    surface="#1A2027",
    panel="#232B34",
    dark=True,
)
LIGHT = Theme(
    name="shiptrack-light",
    primary="#1F6F9F",
    secondary="#287C91",
    accent="#0B6E99",
    success="#2E7D32",
    warning="#9A6700",
    error="#C62828",
    foreground="#1B1F23",
    background="#F7F8FA",
    surface="#FFFFFF",
    panel="#E6EAEF",
    dark=False,
)
