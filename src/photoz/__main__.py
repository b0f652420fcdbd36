"""Command line of the package: ``python -m photoz COMMAND [options]``.

Each Snakemake rule calls one command. A command is a module with a
``main(argv)`` function; the registry below maps names to modules, so a
command's import cost (astropy, torch, ...) is paid only when it runs.
"""

from __future__ import annotations

import importlib
import sys

COMMANDS = {
    # name: module with main(argv)
    "mock-sky-chunk": "photoz.mock.chunk",
    "mock-sky-merge": "photoz.mock.merge",
    "query": "photoz.sdss.catalog_query",
    "frame-index": "photoz.frame_index",
    "retrieve": "photoz.sdss.sas",
    "skyserver-serve": "photoz.sdss.skyserver_server",
    "cutouts": "photoz.cutouts.group",
    "swarp-check": "photoz.cutouts.swarp_check",
    "shards": "photoz.dataset.shards",
    "train": "photoz.nn.train",
    "predict": "photoz.nn.predict",
    "ensemble": "photoz.nn.ensemble",
    "knn": "photoz.knn",
    "tables": "photoz.tables",
    "learning-curve": "photoz.learning_curve",
    "zone": "photoz.zone",
    "figure": "photoz.figures.cli",
    "paper": "photoz.paper",
}


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        print("commands:\n  " + "\n  ".join(sorted(COMMANDS)))
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"photoz: unknown command {name!r}; known: {', '.join(sorted(COMMANDS))}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name])
    return module.main(rest) or 0


if __name__ == "__main__":
    sys.exit(main())
