"""The SkyServer client against a loopback SkyServer with injected faults."""

from __future__ import annotations

import sqlite3

import pandas as pd
import pytest
from test_query_fixtures import make_skyserver_db

from photoz.catalog import SCHEMA
from synthetic_frames import sdss_section
from photoz.sdss import query as Q
from photoz.sdss.skyserver import (
    QueryError, RateLimiter, SkyServerClient, catalog_paged_query, fetch_paged, field_paged_query,
    parse_csv_page, run_catalog_query, skyserver_base_url)
from photoz.sdss.skyserver_server import serve_sqlite

SEL = {"r_max": 17.8, "z_min": 0.0, "z_max": 0.4}
N = 40
PAGE = 6


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    path = tmp_path_factory.mktemp("sky") / "skyserver.sqlite"
    ids = make_skyserver_db(path, N)
    return path, ids


def client(url, retries=8):
    return SkyServerClient(url, 12, timeout=0.4, max_retries=retries, max_requests_per_minute=1e6,
                           backoff=(0.001, 300.0))


@pytest.fixture(scope="module")
def reference(db, tmp_path_factory):
    """The catalog fetched with no fault, in one page."""
    path, _ = db
    out = tmp_path_factory.mktemp("ref")
    with serve_sqlite(path) as s:
        return run_catalog_query(client(s.url), SEL, out / "pages", 1000, out / "cat.parquet")


def test_query_names_every_catalog_column_and_translates_once():
    rows = pd.DataFrame({c: [1.0] for c in Q.CATALOG_QUERY_COLUMNS})
    assert list(Q.catalog_from_rows(rows).columns) == list(SCHEMA)
    sql = Q.catalog_page_query(SEL, after=123, limit=7)
    assert sql.startswith("SELECT TOP 7")
    assert "za.specObjID>=123" in sql and sql.rstrip().endswith("ORDER BY za.specObjID")
    lite = Q.to_sqlite(sql)
    assert "TOP" not in lite and lite.endswith("LIMIT 7")
    assert Q.to_sqlite("SELECT COUNT(*) AS n FROM Field") == "SELECT COUNT(*) AS n FROM Field"
    # the Appendix A cuts are all there
    for cut in ("za.class='GALAXY'", "za.zWarning=0", "za.targetType='SCIENCE'", "za.survey='sdss'",
                "(zi.primtarget&64)>0", "po.clean=1", "po.insideMask=0",
                "po.petroMag_r-po.extinction_r<=17.8", "za.z>0.0", "za.z<0.4"):
        assert cut in sql, cut


def test_cuts_select_exactly_the_good_galaxies(db, reference):
    path, ids = db
    assert sorted(reference["specObjID"].tolist()) == ids
    # the SQL runs unchanged (after the one translation) on SQLite
    con = sqlite3.connect(path)
    n = con.execute(Q.to_sqlite(Q.catalog_count_query(SEL))).fetchone()[0]
    assert n == N
    # E(B-V) is galSpecInfo.e_bv_sfd (Appendix A), not derived from extinction_r
    con = sqlite3.connect(path)
    sfd = dict(con.execute("SELECT specObjID, e_bv_sfd FROM galSpecInfo").fetchall())
    assert reference["ebv"].tolist() == [sfd[i] for i in reference["specObjID"]]
    assert not reference["ebv"].to_numpy() == pytest.approx(reference["extinction_r"].to_numpy() / 2.751)
    # per-object PSF FWHM and sky from PhotoObjAll
    po = pd.read_sql_query("SELECT objID, psffwhm_g, sky_z FROM PhotoObjAll", con).set_index("objID")
    assert reference["psffwhm_g"].tolist() == po.loc[reference["objID"], "psffwhm_g"].tolist()
    assert reference["sky_z"].tolist() == po.loc[reference["objID"], "sky_z"].tolist()
    assert reference["deVAB_r"].isna().sum() == 1  # the -9999 sentinel became NaN


@pytest.mark.parametrize("fault", ["500", "503", "429", "html", "truncated", "cut", "midrow", "drop", "timeout"])
@pytest.mark.parametrize("where", [1, 3])
def test_every_fault_is_survived_without_loss_or_duplicate(db, reference, tmp_path, fault, where):
    path, _ = db
    faults = [None] * where + [fault, fault]  # the count, then pages; two faults in a row
    with serve_sqlite(path, faults=faults, fault_delay=1.0) as s:
        cat = run_catalog_query(client(s.url), SEL, tmp_path / "pages", PAGE, tmp_path / "cat.parquet")
        seen = [f for _, _, f in s.requests]
    assert seen.count(fault) == 2
    assert cat["specObjID"].is_unique
    pd.testing.assert_frame_equal(cat, reference)


def test_truncation_at_a_row_boundary_is_not_taken_for_the_last_page(db, tmp_path):
    """A body cut cleanly before the end looks like a short last page; the count catches it."""
    path, ids = db
    with serve_sqlite(path, faults=[None, None, None, "truncated"]) as s:
        df = fetch_paged(client(s.url), catalog_paged_query(SEL), tmp_path, PAGE)
    assert sorted(df["specObjID"]) == ids


def test_persistent_failure_names_the_page(db, tmp_path):
    path, _ = db
    with serve_sqlite(path, faults=[None, None, None] + ["down"] * 10) as s:
        with pytest.raises(QueryError, match=r"catalog page 2 \(.*page-00002\.csv\).*HTTP 500"):
            fetch_paged(client(s.url, retries=3), catalog_paged_query(SEL), tmp_path, PAGE)


def test_persistent_html_and_truncation_are_reported(db, tmp_path):
    path, _ = db
    with serve_sqlite(path, faults=[None] + ["html"] * 5) as s:
        with pytest.raises(QueryError, match="page 0.*HTML"):
            fetch_paged(client(s.url, retries=4), catalog_paged_query(SEL), tmp_path / "a", PAGE)
    with serve_sqlite(path, faults=[None, None] + ["truncated"] * 5) as s:
        with pytest.raises(QueryError, match="page 1.*truncated"):
            fetch_paged(client(s.url, retries=4), catalog_paged_query(SEL), tmp_path / "b", PAGE)


BAD_SQL = [
    ("SELECT TOP 3 nosuch FROM Field", "Invalid column name 'nosuch'."),
    ("SELECT TOP 3 f.nosuch FROM Field AS f", "Invalid column name 'nosuch'."),
    ("SELECT TOP 3 run FORM Field", "Incorrect syntax near 'Field'."),
    ("SELECT TOP 3 run FROM NoSuchTable", "Invalid object name 'NoSuchTable'."),
    ("SELECT TOP 3 nosuchfn(run) FROM Field", "'nosuchfn' is not a recognized built-in function name."),
]


@pytest.mark.parametrize("style", ["page", "json", "table"])
@pytest.mark.parametrize("sql,message", BAD_SQL)
def test_sql_error_fails_at_once_quoting_skyserver(db, tmp_path, style, sql, message):
    """SQL Server's own message, as x_sql.aspx (status-200 ERROR page) or SciServer REST (500 + JSON) sends it."""
    path, _ = db
    with serve_sqlite(path, sql_error_style=style) as s:
        c = client(s.url)
        with pytest.raises(QueryError) as err:
            c.fetch(sql, ["run"], "bad query")
        assert len(s.requests) == 1  # not retried
    assert f"bad query: SkyServer refused the query (HTTP {500 if style == 'json' else 200}): {message}" \
        in str(err.value)


def test_a_maintenance_page_is_retried_but_an_error_page_is_not(db, tmp_path):
    """Both are HTML with status 200: only the one carrying a SQL error is final."""
    path, _ = db
    with serve_sqlite(path, faults=["html", "html"]) as s:
        text, data = client(s.url).fetch("SELECT COUNT(*) AS n FROM Field", ["n"], "count")
        assert len(s.requests) == 3 and len(data) == 1


def test_interrupted_query_resumes_from_kept_pages(db, reference, tmp_path):
    path, _ = db
    pages = tmp_path / "pages"
    # first run: the count and pages 0-2 arrive, then the service goes down for good
    with serve_sqlite(path, faults=[None] * 4 + ["down"] * 20) as s:
        with pytest.raises(QueryError, match="page 3"):
            run_catalog_query(client(s.url, retries=2), SEL, pages, PAGE, tmp_path / "cat.parquet")
    kept = sorted(p.name for p in pages.glob("page-*.csv"))
    assert kept == ["page-00000.csv", "page-00001.csv", "page-00002.csv"]
    assert not (tmp_path / "cat.parquet").exists()
    before = {p: p.read_bytes() for p in pages.glob("page-*.csv")}
    # rerun: only the missing pages are asked for
    with serve_sqlite(path) as s:
        cat = run_catalog_query(client(s.url), SEL, pages, PAGE, tmp_path / "cat.parquet")
        cmds = [cmd for _, cmd, _ in s.requests]
    assert not any("COUNT(*)" in c for c in cmds)  # the count was kept too
    last_key = pd.read_csv(pages / "page-00002.csv", comment="#")["specObjID"].iloc[-1]
    assert f"za.specObjID>={last_key}" in cmds[0]
    expected_pages = 1 + -(-(N - PAGE) // (PAGE - 1)) + 1  # first page, overlapping pages, one-row closing page
    assert len(cmds) == expected_pages - 3
    for p, data in before.items():
        assert p.read_bytes() == data
    pd.testing.assert_frame_equal(cat, reference)
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "cat.parquet"), reference)


def test_pages_of_another_query_are_not_reused(db, tmp_path):
    path, _ = db
    with serve_sqlite(path) as s:
        a = fetch_paged(client(s.url), catalog_paged_query(SEL), tmp_path, PAGE)
        b = fetch_paged(client(s.url), catalog_paged_query({**SEL, "r_max": 16.5}), tmp_path, PAGE)
    assert len(b) < len(a)
    assert set(b["specObjID"]) <= set(a["specObjID"])


def test_field_table_paged_on_composite_key(db, tmp_path):
    path, _ = db
    con = sqlite3.connect(path)
    n = con.execute("SELECT COUNT(*) FROM Field").fetchone()[0]
    with serve_sqlite(path, faults=[None, None, "cut", "midrow"]) as s:
        df = fetch_paged(client(s.url), field_paged_query(301), tmp_path, 5)
    assert len(df) == n
    assert not df.duplicated(["run", "camcol", "field"]).any()
    assert list(df.columns) == list(Q.FIELD_COLUMNS)


def test_rate_limiter_spaces_requests():
    now = [0.0]
    slept = []

    def sleep(dt):
        slept.append(dt)
        now[0] += dt

    lim = RateLimiter(60, clock=lambda: now[0], sleep=sleep)
    for _ in range(5):
        lim.wait()
    assert now[0] == pytest.approx(4.0)  # 5 requests at 1 s spacing
    assert all(d == pytest.approx(1.0) for d in slept)


def test_base_url_and_csv_checks():
    assert skyserver_base_url("https://skyserver.sdss.org/dr12/en/tools/search/x_sql.aspx") == \
        "https://skyserver.sdss.org"
    assert skyserver_base_url("http://127.0.0.1:8123") == "http://127.0.0.1:8123"
    assert parse_csv_page("#Table1\na,b\n1,2.5\n3,null\n", ["a", "b"]) == ["1,2.5", "3,null"]
    with pytest.raises(ValueError, match="header"):
        parse_csv_page("#Table1\nerror_message\nsyntax error\n", ["a", "b"])
    with pytest.raises(ValueError, match="not a number"):
        parse_csv_page("a,b\n1,x\n", ["a", "b"])


def test_pages_of_a_regenerated_mock_database_are_not_reused(tmp_path):
    from photoz.sdss.skyserver import source_identity

    db = tmp_path / "db.sqlite"
    make_skyserver_db(db, 12, seed=1)
    with serve_sqlite(db) as s:
        c = client(s.url)
        a = fetch_paged(c, catalog_paged_query(SEL), tmp_path / "p", PAGE, source_identity(c, db))
    db.unlink()
    ids = make_skyserver_db(db, 15, seed=2)  # same SQL, other rows
    with serve_sqlite(db) as s:
        c = client(s.url)
        b = fetch_paged(c, catalog_paged_query(SEL), tmp_path / "p", PAGE, source_identity(c, db))
        assert any("COUNT(*)" in cmd for _, cmd, _ in s.requests)
    assert len(a) == 12 and sorted(b["specObjID"]) == ids


def test_query_command_in_mock_mode(db, reference, tmp_path):
    import json

    from photoz.sdss import catalog_query

    path, _ = db
    sdss = sdss_section(301, skyserver_url="https://skyserver.sdss.org/dr12/en/tools/search/x_sql.aspx", page_size=9,
                        max_requests_per_minute=60000, max_retries=2, timeout_s=5)
    args = ["--sdss-json", json.dumps(sdss), "--selection-json", json.dumps(SEL), "--mock-db", str(path),
            "--pages", str(tmp_path / "pages"), "--out", str(tmp_path / "cat.parquet"),
            "--rejected", str(tmp_path / "rej.csv"), "--log", str(tmp_path / "query.log")]
    assert catalog_query.main(args) == 0
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "cat.parquet"), reference)
    assert f"catalog: {N} rows written" in (tmp_path / "query.log").read_text()
    assert len(pd.read_csv(tmp_path / "rej.csv")) == 0
