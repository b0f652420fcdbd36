"""The loopback SkyServer is as strict as SkyServer; the client stays within its limits.

SkyServer (IIS) refuses URL query strings over 2,048 characters (HTTP 400,
"maxQueryStringLength"), returns at most 500,000 rows per query and allows 60
queries a minute. SpecObjAll holds repeat spectra of some galaxies; the
catalog keeps one spectrum per galaxy.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import pytest
import requests
from test_query_fixtures import make_skyserver_db

from photoz.config import load_config
from photoz.sdss import query as Q
from photoz.sdss.skyserver import (QueryError, SkyServerClient, catalog_paged_query, client_from_config, fetch_paged,
                                   run_catalog_query)
from photoz.sdss.skyserver_server import QUERY_STRING_MESSAGE, RateWindow, serve_sqlite

ROOT = Path(__file__).resolve().parents[1]
SEL = {"r_max": 17.8, "z_min": 0.0, "z_max": 0.4}


def client(url, retries=3, **kw):
    kw.setdefault("max_requests_per_minute", 1e6)
    return SkyServerClient(url, 12, timeout=5, max_retries=retries, backoff=(0.001, 300.0), **kw)


def test_every_query_of_the_dr12_plan_fits_the_url_limit():
    """Every page query of config/sdss-dr12.yaml (516,546 rows) within 2,048 encoded characters."""
    cfg = load_config(ROOT / "config" / "sdss-dr12.yaml")
    sdss, sel = cfg["sdss"], cfg["selection"]
    c = client_from_config(sdss)
    page = int(sdss["page_size"])
    assert page <= Q.MAX_ROWS
    n_rows = 516_546
    # the longest keys a page can start at: 19-digit specObjIDs (DR12 reaches 9.2e18)
    keys = [None] + [9_223_372_036_854_775_807 - (n_rows - k * (page - 1)) for k in range(1, n_rows // (page - 1) + 2)]
    queries = [catalog_paged_query(sel).page_sql(None if k is None else (k,), page) for k in keys]
    queries.append(catalog_paged_query(sel).count_sql)
    queries += [Q.field_page_query(sdss["rerun"], a, page) for a in (None, (999999, 6, 9999))]
    queries.append(Q.field_count_query(sdss["rerun"]))
    lengths = [len(c.query_string(q)) for q in queries]
    assert len(lengths) >= 14
    assert max(lengths) <= Q.MAX_QUERY_STRING, max(lengths)
    # and the string measured is what astroquery puts in the URL (newlines become spaces, + for space)
    assert c.query_string("SELECT 1\nFROM x").startswith("cmd=+SELECT+1+FROM+x&format=csv")


def test_a_query_over_the_limit_is_refused_with_the_limit_named(tmp_path):
    db = tmp_path / "db.sqlite"
    make_skyserver_db(db, 5)
    long_sql = "SELECT TOP 1 fi.run FROM Field fi WHERE " + " OR ".join(f"fi.field={i}" for i in range(300))
    with serve_sqlite(db) as s:
        # the server answers as IIS does
        r = requests.get(f"{s.url}/dr12/en/tools/search/x_results.aspx",
                         params={"cmd": long_sql, "format": "csv"}, timeout=5)
        assert r.status_code == 400 and QUERY_STRING_MESSAGE in r.text
        # the client does not send it at all
        c = client(s.url)
        with pytest.raises(QueryError, match=r"at most 2048 \(maxQueryStringLength\)"):
            c.fetch(long_sql, ["run"], "long query")
        assert len(s.requests) == 1  # only the raw request above

        # and a client that skipped its own check stops at the first 400, not retrying
        class Careless(SkyServerClient):
            def check_length(self, sql, label="query"):
                return 0

        careless = Careless(s.url, 12, timeout=5, max_retries=5, max_requests_per_minute=1e6, backoff=(0.001, 300.0))
        with pytest.raises(QueryError, match="HTTP 400.*maxQueryStringLength"):
            careless.fetch(long_sql, ["run"], "long query")
        assert len(s.requests) == 2


def test_row_cap_is_enforced_and_caught(tmp_path):
    db = tmp_path / "db.sqlite"
    make_skyserver_db(db, 20)
    with pytest.raises(ValueError, match="500000"):
        Q.catalog_page_query(SEL, None, limit=Q.MAX_ROWS + 1)
    with serve_sqlite(db, max_rows=5) as s:  # a server whose cap is below the page size
        with pytest.raises(QueryError, match="5 rows instead of the 8 the count predicts"):
            fetch_paged(client(s.url, retries=1), catalog_paged_query(SEL), tmp_path / "p", 8)


def test_rate_window_admits_60_per_minute():
    t = [0.0]
    w = RateWindow(60, clock=lambda: t[0])
    assert all(w.admit() == 0 for _ in range(60))
    assert w.admit() == 60  # the 61st within the minute waits for the first to age out
    t[0] = 59.5
    assert w.admit() == 1
    t[0] = 60.0
    assert w.admit() == 0


def test_client_rides_the_servers_rate_limit(tmp_path):
    """A client faster than 60/min gets 429s with Retry-After and waits as told."""
    db = tmp_path / "db.sqlite"
    ids = make_skyserver_db(db, 20)
    t = [0.0]
    waits = []

    def sleep(s):
        waits.append(s)
        t[0] += s

    with serve_sqlite(db, retry_after=0) as s:
        s.rate = RateWindow(3, clock=lambda: t[0])
        c = SkyServerClient(s.url, 12, timeout=5, max_retries=3, max_requests_per_minute=1e6, backoff=(0.001, 300.0),
                            sleep=sleep)
        df = fetch_paged(c, catalog_paged_query(SEL), tmp_path / "p", 8, None)
        refused = [f for _, _, f in s.requests if f == "rate"]
    assert sorted(df["specObjID"]) == ids
    assert refused and max(waits) >= 59


def test_repeat_spectra_become_one_spectrum_per_galaxy(tmp_path, caplog):
    db = tmp_path / "db.sqlite"
    kept = {}
    make_skyserver_db(db, 40, repeats=8, kept=kept)
    with serve_sqlite(db) as s, caplog.at_level(logging.INFO, logger="photoz.skyserver"):
        cat = run_catalog_query(client(s.url), SEL, tmp_path / "pages", 7, tmp_path / "cat.parquet",
                                tmp_path / "rejected.csv")
    assert len(cat) == 40 and cat["objID"].is_unique and cat["specObjID"].is_unique
    got = dict(zip(cat["objID"], cat["specObjID"]))
    assert all(got[o] == sid for o, sid in kept.items())  # the rule of every case
    rej = pd.read_csv(tmp_path / "rejected.csv")
    repeats = rej[rej["reason"].str.startswith("repeat spectrum")]
    assert len(repeats) == 6  # 8 pairs; the 2 BOSS primaries are cut by the query itself
    assert "6 repeat spectra left out" in caplog.text


def test_interrupted_and_uninterrupted_queries_give_the_same_catalog(tmp_path):
    db = tmp_path / "db.sqlite"
    make_skyserver_db(db, 40, repeats=8)
    with serve_sqlite(db) as s:
        ref = run_catalog_query(client(s.url), SEL, tmp_path / "ref", 6, tmp_path / "ref.parquet")
    pages = tmp_path / "pages"
    with serve_sqlite(db, faults=[None] * 4 + ["down"] * 20) as s:
        with pytest.raises(QueryError, match="page 3"):
            run_catalog_query(client(s.url, retries=2), SEL, pages, 6, tmp_path / "cat.parquet")
    with serve_sqlite(db) as s:
        cat = run_catalog_query(client(s.url), SEL, pages, 6, tmp_path / "cat.parquet")
    pd.testing.assert_frame_equal(cat, ref)
