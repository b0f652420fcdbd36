"""``sdss.service: casjobs``: a CasJobs batch job INTO MyDB, paged out, against a loopback CasJobs."""

from __future__ import annotations

import json
import logging

import pandas as pd
import pytest
from test_query_fixtures import make_skyserver_db

from photoz.sdss import skyserver
from photoz.sdss.casjobs import (CasJobsAuthError, CasJobsClient, catalog_table_name, fetch_casjobs,
                                 run_casjobs_catalog, token_from_env)
from photoz.sdss.casjobs_server import serve_casjobs
from photoz.sdss.skyserver import QueryError, finish_catalog, run_catalog_query
from photoz.sdss.skyserver_server import serve_sqlite

SEL = {"r_max": 17.8, "z_min": 0.0, "z_max": 0.4}
TOKEN = "tok-" + "a" * 28


@pytest.fixture(scope="module")
def db(tmp_path_factory):
    path = tmp_path_factory.mktemp("cj") / "context.sqlite"
    kept = {}
    make_skyserver_db(path, 40, repeats=8, kept=kept)
    return path, kept


@pytest.fixture(scope="module")
def reference(db, tmp_path_factory):
    """The same catalog through SkyServer SQL paging."""
    out = tmp_path_factory.mktemp("ref")
    with serve_sqlite(db[0]) as s:
        c = skyserver.SkyServerClient(s.url, max_requests_per_minute=1e6)
        return run_catalog_query(c, SEL, out / "pages", 1000, out / "cat.parquet")


def client(url, token=TOKEN, retries=3):
    return CasJobsClient(url, token, "TEST_TOKEN", timeout=5, max_retries=retries, backoff_base=0.001,
                         poll_s=0.02)


def run(c, pages, page=7, out=None):
    rows = fetch_casjobs(c, SEL, "DR12", pages, page, "test-source")
    return finish_catalog(rows, out or (pages.parent / "cat.parquet"), pages.parent / "rejected.csv")


def test_casjobs_catalog_equals_the_skyserver_catalog(db, reference, tmp_path):
    with serve_casjobs(db[0], tokens={TOKEN}) as s:
        cat = run(client(s.url), tmp_path / "pages")
        methods = [m for m, _, _ in s.requests]
        submitted = [q for m, _, q in s.requests if m == "PUT"]
    pd.testing.assert_frame_equal(cat, reference)
    assert methods.count("PUT") == 1 and methods.count("GET") >= 1
    table = catalog_table_name(SEL, "DR12")
    assert submitted[0].startswith("SELECT za.specObjID") and f"INTO mydb.{table} FROM SpecObjAll" in submitted[0]
    record = json.loads((tmp_path / "pages" / "casjobs-job.json").read_text())
    assert record["status"] == "finished" and record["rows"] == 40 + 6  # 6 repeat spectra pass the cuts
    assert TOKEN not in json.dumps(record) and TOKEN not in (tmp_path / "pages" / "query.json").read_text()


def test_failed_job_stops_with_its_error_and_a_rerun_submits_again(db, reference, tmp_path):
    pages = tmp_path / "pages"
    with serve_casjobs(db[0], tokens={TOKEN}, fail_jobs=1) as s:
        with pytest.raises(QueryError, match=r"CasJobs job \d+ failed: Query timed out"):
            run(client(s.url), pages)
        cat = run(client(s.url), pages)  # the failed job is submitted again
        assert [m for m, _, _ in s.requests].count("PUT") == 2
    pd.testing.assert_frame_equal(cat, reference)


def test_expired_token_stops_cleanly_and_a_fresh_token_resumes(db, reference, tmp_path, caplog):
    pages = tmp_path / "pages"
    fresh = "tok-" + "b" * 28
    with serve_casjobs(db[0], tokens={TOKEN}) as s:
        s.expire_after = 8  # the token expires in the middle of the paging
        with caplog.at_level(logging.INFO), pytest.raises(CasJobsAuthError, match=r"HTTP 401.*\$TEST_TOKEN"):
            run(client(s.url), pages)
        n_pages = len(list(pages.glob("page-*.csv")))
        assert n_pages >= 1
        s.tokens = {fresh}
        s.expire_after = None
        before = len(s.requests)
        cat = run(client(s.url, token=fresh), pages)
        later = s.requests[before:]
    assert [m for m, _, _ in later].count("PUT") == 0  # the finished job and the kept pages are reused
    assert not any(q and "COUNT(*)" in q for _, _, q in later)
    pd.testing.assert_frame_equal(cat, reference)
    assert TOKEN not in caplog.text and fresh not in caplog.text


def test_unset_token_and_transient_errors(db, reference, tmp_path, monkeypatch):
    monkeypatch.delenv("NO_SUCH_TOKEN_VAR", raising=False)
    with pytest.raises(CasJobsAuthError, match="NO_SUCH_TOKEN_VAR"):
        token_from_env("NO_SUCH_TOKEN_VAR")
    with serve_casjobs(db[0], tokens={TOKEN}, faults=["503", None, "500", None, None, "503"]) as s:
        cat = run(client(s.url, retries=4), tmp_path / "pages", page=9)
    pd.testing.assert_frame_equal(cat, reference)
    assert "CasJobsClient" in repr(client("http://x")) and TOKEN not in repr(client("http://x"))


def test_query_command_with_service_casjobs_in_mock_mode(db, reference, tmp_path):
    sdss = {"data_release": 12, "rerun": 301, "service": "casjobs", "casjobs_context": "DR12",
            "skyserver_url": "https://skyserver.sdss.org/dr12/en/tools/search/x_sql.aspx", "page_size": 11,
            "max_retries": 2, "timeout_s": 5, "casjobs_poll_s": 0.02}
    args = ["--sdss-json", json.dumps(sdss), "--selection-json", json.dumps(SEL), "--mock-db", str(db[0]),
            "--pages", str(tmp_path / "pages"), "--out", str(tmp_path / "cat.parquet"),
            "--rejected", str(tmp_path / "rej.csv"), "--log", str(tmp_path / "query.log")]
    assert skyserver.main(args) == 0
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "cat.parquet"), reference)
    assert "6 repeat spectra left out" in (tmp_path / "query.log").read_text()


def test_run_casjobs_catalog_without_token_names_the_variable(db, tmp_path, monkeypatch):
    monkeypatch.delenv("SCISERVER_TOKEN", raising=False)
    with pytest.raises(CasJobsAuthError, match="SCISERVER_TOKEN"):
        run_casjobs_catalog({"casjobs_url": "http://127.0.0.1:9"}, SEL, tmp_path / "p", tmp_path / "c.parquet")
