"""``python -m photoz query``: the catalog query, through SkyServer or CasJobs.

The one command of the ``query`` rule. ``sdss.service`` chooses the client:
``skyserver`` (SQL paging, :func:`photoz.sdss.skyserver.run_catalog_query`) or
``casjobs`` (a MyDB job, :func:`photoz.sdss.casjobs.run_casjobs_catalog`); both
end in :func:`photoz.sdss.skyserver.finish_catalog`. Kept apart from the two
clients so that neither imports the other's dispatch (casjobs builds on skyserver).
"""

from __future__ import annotations

import argparse
import json
import logging

from ..io import setup_logging
from .casjobs import run_casjobs_catalog
from .skyserver import QueryError, open_client, run_catalog_query

__all__ = ["main"]

log = logging.getLogger("photoz.skyserver")


def main(argv=None):
    """``python -m photoz query``: the catalog query -> results/catalog.parquet."""
    p = argparse.ArgumentParser(prog="photoz query", description=main.__doc__)
    p.add_argument("--sdss-json", required=True, help="the sdss config section as JSON")
    p.add_argument("--selection-json", required=True, help="the selection config section as JSON")
    p.add_argument("--mock-db", help="serve this SQLite mock database on loopback and query it")
    p.add_argument("--pages", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--rejected", required=True)
    p.add_argument("--log")
    a = p.parse_args(argv)
    setup_logging(a.log)
    sdss_cfg, selection = json.loads(a.sdss_json), json.loads(a.selection_json)
    service = sdss_cfg["service"]
    try:
        if service == "casjobs":
            run_casjobs_catalog(sdss_cfg, selection, a.pages, a.out, a.rejected, mock_db=a.mock_db)
        else:
            with open_client(sdss_cfg, a.mock_db) as (client, source):
                run_catalog_query(client, selection, a.pages, sdss_cfg["page_size"], a.out,
                                  a.rejected, source)
    except QueryError as err:
        log.error("%s", err)
        return 1
    return 0
