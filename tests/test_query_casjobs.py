"""``sdss.service: casjobs``: a CasJobs batch job INTO MyDB, paged out, against a loopback CasJobs."""

from __future__ import annotations

import json
import logging
import sqlite3

import pandas as pd
import pytest
from test_query_fixtures import make_skyserver_db

from synthetic_frames import sdss_section
from photoz.sdss import catalog_query, skyserver
from photoz.sdss import query as Q
from photoz.sdss.casjobs import (CasJobsAuthError, CasJobsClient, CasJobsJobFailed, CasJobsUnanswered,
                                 catalog_table_name, fetch_casjobs, run_casjobs_catalog, token_from_env)
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
        c = skyserver.SkyServerClient(s.url, 12, timeout=120, max_retries=6, max_requests_per_minute=1e6)
        return run_catalog_query(c, SEL, out / "pages", 1000, out / "cat.parquet")


def client(url, token=TOKEN, retries=3):
    return CasJobsClient(url, token, "TEST_TOKEN", timeout=5, max_retries=retries, poll_s=0.02,
                         backoff=(0.001, 300.0))


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
        s.expire_after = 14  # the token expires in the middle of the paging
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
    sdss = sdss_section(301, service="casjobs", casjobs_context="DR12",
                        skyserver_url="https://skyserver.sdss.org/dr12/en/tools/search/x_sql.aspx", page_size=11,
                        max_retries=2, timeout_s=5, casjobs_poll_s=0.02)
    args = ["--sdss-json", json.dumps(sdss), "--selection-json", json.dumps(SEL), "--mock-db", str(db[0]),
            "--pages", str(tmp_path / "pages"), "--out", str(tmp_path / "cat.parquet"),
            "--rejected", str(tmp_path / "rej.csv"), "--log", str(tmp_path / "query.log")]
    assert catalog_query.main(args) == 0
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "cat.parquet"), reference)
    assert "6 repeat spectra left out" in (tmp_path / "query.log").read_text()


def test_run_casjobs_catalog_without_token_names_the_variable(db, tmp_path, monkeypatch):
    monkeypatch.delenv("SCISERVER_TOKEN", raising=False)
    with pytest.raises(CasJobsAuthError, match="SCISERVER_TOKEN"):
        sdss = sdss_section(301, casjobs_url="http://127.0.0.1:9")
        run_casjobs_catalog(sdss, SEL, tmp_path / "p", tmp_path / "c.parquet")


# --- idempotent submission (issue 29) ----------------------------------------------------------
def methods(s, since=0):
    return [m for m, _, _ in s.requests[since:]]


def test_a_second_job_into_the_same_table_fails_as_on_casjobs(db):
    """The loopback is as strict as SQL Server: INTO an existing MyDB table fails, with its message."""
    table = catalog_table_name(SEL, "DR12")
    sql = Q.catalog_into_query(SEL, table)
    with serve_casjobs(db[0], tokens={TOKEN}) as s:
        c = client(s.url)
        c.wait(c.submit_job(sql, "DR12"))
        with pytest.raises(CasJobsJobFailed, match=f"There is already an object named '{table}' in the database."):
            c.wait(c.submit_job(sql, "DR12"))


def test_lost_reply_to_the_submission_creates_one_job_only(db, reference, tmp_path):
    """The PUT creates the job but its answer is lost: the job is found by its table, never submitted twice."""
    with serve_casjobs(db[0], tokens={TOKEN}, lose_put_replies=1) as s:
        cat = run(client(s.url), tmp_path / "pages")
        assert methods(s).count("PUT") == 1 and len(s.jobs) == 1
        assert [j["Status"] for j in s.jobs.values()] == [5]
    pd.testing.assert_frame_equal(cat, reference)


def test_lost_replies_of_the_old_client_leave_a_state_that_is_reused(db, reference, tmp_path):
    """A finished job and a second one failed on its table (a blindly retried PUT): the table is reused."""
    table = catalog_table_name(SEL, "DR12")
    sql = Q.catalog_into_query(SEL, table)
    with serve_casjobs(db[0], tokens={TOKEN}) as s:
        c = client(s.url)
        jobs = [c.submit_job(sql, "DR12") for _ in range(2)]
        outcome = {}
        for job in jobs:  # the server may run them in either order: whichever runs second fails on the table
            try:
                c.wait(job)
                outcome[job] = "finished"
            except CasJobsJobFailed:
                outcome[job] = "failed"
        assert sorted(outcome.values()) == ["failed", "finished"]
        before = len(s.requests)
        cat = run(client(s.url), tmp_path / "pages")
        later = s.requests[before:]
    assert [m for m, _, _ in later].count("PUT") == 0 and not any(q and "DROP" in q for _, _, q in later)
    finished = next(job for job, o in outcome.items() if o == "finished")
    assert json.loads((tmp_path / "pages" / "casjobs-job.json").read_text())["job_id"] == finished
    pd.testing.assert_frame_equal(cat, reference)


def test_finished_table_is_reused_when_the_local_record_is_gone(db, reference, tmp_path):
    with serve_casjobs(db[0], tokens={TOKEN}) as s:
        run(client(s.url), tmp_path / "a" / "pages")
        before = len(s.requests)
        cat = run(client(s.url), tmp_path / "b" / "pages")  # another pages folder: no local record
        assert methods(s, before).count("PUT") == 0
    pd.testing.assert_frame_equal(cat, reference)


def test_a_table_no_finished_job_wrote_is_dropped_then_the_query_submitted(db, reference, tmp_path):
    """A partial table (a failed job's, or of unknown origin) is never read: dropped, then the job submitted."""
    table = catalog_table_name(SEL, "DR12")
    mydb = tmp_path / "mydb.sqlite"
    with sqlite3.connect(mydb) as con:
        con.execute(f"CREATE TABLE {table} (specObjID INTEGER, z REAL)")
        con.execute(f"INSERT INTO {table} VALUES (1, 0.1)")
    with serve_casjobs(db[0], tokens={TOKEN}, mydb=mydb) as s:
        cat = run(client(s.url), tmp_path / "pages")
        drops = [q for m, _, q in s.requests if q and q.startswith("DROP TABLE")]
        assert drops == [f"DROP TABLE {table}"] and methods(s).count("PUT") == 1
        assert [j["Status"] for j in s.jobs.values()] == [5]
    pd.testing.assert_frame_equal(cat, reference)


def test_a_running_job_of_an_interrupted_run_is_waited_for(db, reference, tmp_path):
    table = catalog_table_name(SEL, "DR12")
    with serve_casjobs(db[0], tokens={TOKEN}, job_seconds=0.3) as s:
        c = client(s.url)
        job = c.submit_job(Q.catalog_into_query(SEL, table), "DR12")  # the run was killed here
        cat = run(client(s.url), tmp_path / "pages")
        assert methods(s).count("PUT") == 1 and list(s.jobs) == [job]
    pd.testing.assert_frame_equal(cat, reference)


# --- errors no retry can fix fail at once, quoting CasJobs (issue 29) -----------------------------
def test_sql_error_of_a_quick_query_fails_at_once(db):
    with serve_casjobs(db[0], tokens={TOKEN}) as s:
        c = client(s.url, retries=5)
        with pytest.raises(QueryError, match=r"CasJobs refused the query \(HTTP 500\): Invalid column name "
                                              r"'nosuch'\.") as err:
            c.query_rows("SELECT TOP 3 nosuch FROM SpecObjAll", "DR12")
        assert len(s.requests) == 1
    assert not isinstance(err.value, CasJobsUnanswered)


def test_sql_error_of_a_job_is_its_failure_message(db):
    with serve_casjobs(db[0], tokens={TOKEN}) as s:
        c = client(s.url)
        with pytest.raises(CasJobsJobFailed, match=r"failed: Invalid column name 'nosuch'\."):
            c.wait(c.submit_job("SELECT za.nosuch INTO mydb.t1 FROM SpecObjAll AS za", "DR12"))


def test_wrong_token_fails_at_once_quoting_casjobs(db):
    with serve_casjobs(db[0], tokens={TOKEN}) as s:
        with pytest.raises(CasJobsAuthError, match=r"HTTP 401.*Invalid or missing X-Auth-Token.*\$TEST_TOKEN"):
            client(s.url, token="tok-wrong", retries=5).list_jobs()
        assert len(s.requests) == 1
