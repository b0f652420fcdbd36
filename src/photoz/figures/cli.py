"""``python -m photoz figure NAME [options]``: make one figure (``--help`` after NAME for its options)."""

from __future__ import annotations

import importlib
import sys

from photoz.figures import FIGURES, common


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in FIGURES:
        if argv and argv[0] not in ("-h", "--help"):
            print(f"photoz figure: unknown figure {argv[0]!r}", file=sys.stderr)
        print(__doc__ + "\nfigures:\n  " + "\n  ".join(FIGURES))
        return 0 if not argv or argv[0] in ("-h", "--help") else 2
    return common.run(importlib.import_module(FIGURES[argv[0]]), argv[1:])
