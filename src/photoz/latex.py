"""LaTeX formatting of the numbers and words the tables and the paper print: one set of helpers.

* :func:`number` -- a value with a format spec, ``--`` when missing, a text-mode minus sign (``$-$0.00123``);
* :func:`count` -- an integer with thin-space thousands separators (``393\\,219``);
* :func:`pm` -- value ± error in math mode;
* :func:`escape` -- text with LaTeX's special characters escaped.
"""

from __future__ import annotations

import math

__all__ = ["FMT", "isnum", "number", "count", "pm", "escape", "b16_name", "relabel_b16"]

#: Format of each metric, in the tables and in the text.
FMT = {"bias": ".5f", "sigma_mad": ".5f", "eta": ".2f", "crps": ".5f"}


def isnum(x):
    """True for a finite-or-infinite number (not None, NaN, pandas NA or a non-numeric string)."""
    try:
        return x is not None and not math.isnan(float(x))
    except (TypeError, ValueError):
        return False


def number(value, fmt, dash="--"):
    """``value`` formatted with ``fmt`` (a format spec or a key of :data:`FMT`); ``dash`` if missing."""
    if not isnum(value):
        return dash
    s = format(float(value), FMT.get(fmt, fmt))
    return f"$-${s[1:]}" if s.startswith("-") else s


def count(value, dash="--"):
    """An integer with thin-space thousands separators (``dash`` if missing)."""
    return dash if not isnum(value) else f"{int(round(float(value))):,}".replace(",", "\\,")


def pm(value, error, fmt):
    """``$value \\pm error$`` (just the value if the error is missing; ``--`` if the value is)."""
    if not isnum(value):
        return "--"
    if not isnum(error):
        return number(value, fmt)
    f = FMT.get(fmt, fmt)
    return f"${format(float(value), f)}\\pm{format(float(error), f)}$"


def escape(s):
    """``s`` with LaTeX's special characters escaped (en dashes and minus signs as ``--``)."""
    return "".join(_ESCAPES.get(c, c) for c in str(s))


_ESCAPES = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "_": r"\_", "#": r"\#", "$": r"\$",
            "{": r"\{", "}": r"\}", "~": r"\~{}", "^": r"\^{}", "−": "--", "–": "--"}


def b16_name(mode):
    """The name of the B16 estimator in a table or figure of a run in ``mode``.

    ``sdss``: the SDSS Photoz table, "B16"; otherwise the mock's B16-like
    Photoz table, "B16-like (mock)", so that no mock table or figure says B16.
    """
    return "B16" if mode == "sdss" else "B16-like (mock)"


def relabel_b16(text, mode):
    """``text`` with "B16" replaced by :func:`b16_name` (unchanged in mode ``sdss``)."""
    return text if mode == "sdss" else str(text).replace("B16", b16_name(mode))
