"""SkyServer client: paged, rate-limited, retried and resumable SQL queries.

The transport is ``astroquery.sdss`` (``SDSS.query_sql_async`` with
``data_release=12``): the SkyServer SQL search, ``GET
{base}/dr12/en/tools/search/x_results.aspx?cmd=SQL&format=csv&searchtool=SQL``.
The base URL (``astroquery.sdss.conf.skyserver_baseurl``) is the real
SkyServer by default and a loopback server (:mod:`photoz.sdss.skyserver_server`)
in mock mode and in the tests, so one code path serves both.

Completeness, without trusting the service:

* a ``COUNT(*)`` of the query is fetched first;
* pages are keyset pages *overlapping by one row*: page k asks for the rows
  with key >= the last key of page k-1, so the last row of every page is
  received twice and compared, which catches a body cut inside its last row;
* every page is checked: no HTML, the exact header, the right number of
  fields and numbers in every row, keys strictly increasing, and exactly the
  number of rows the count predicts;
* a bad page is retried (exponential backoff, ``Retry-After`` honoured on
  429/503) and, if it stays bad, the run stops with :class:`QueryError`
  naming the page;
* an error no retry can fix (SQL Server refusing the query: bad syntax, an
  unknown column or table; :func:`photoz.sdss.sqlerrors.permanent_sql_error`)
  stops the run at once, quoting SkyServer's message, whether it comes as
  SkyServer's status-200 error page or as a status-500 error body;
* each good page is written to ``pages_dir`` (atomically) and reused by a
  rerun, so an interrupted query resumes where it stopped.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import pandas as pd
import requests

from ..io import atomic_path, atomic_write_bytes
from . import query as Q
from .sqlerrors import permanent_sql_error

__all__ = ["QueryError", "PageError", "RateLimiter", "SkyServerClient", "PagedQuery",
           "fetch_paged", "source_identity", "open_client", "finish_catalog", "catalog_paged_query", "field_paged_query", "skyserver_base_url",
           "parse_csv_page"]

log = logging.getLogger("photoz.skyserver")

RETRYABLE_STATUS = {408, 429, 500, 502, 503, 504}


class QueryError(RuntimeError):
    """A query could not be completed; the message names the page and the cause."""


class PageError(ValueError):
    """A received page is not a complete, well-formed result (retryable)."""


class RateLimiter:
    """At most ``max_per_minute`` request starts per minute (even spacing).

    ``clock`` and ``sleep`` are injectable so the limiter can be tested
    without waiting.
    """

    def __init__(self, max_per_minute, clock=time.monotonic, sleep=time.sleep):
        if max_per_minute <= 0:
            raise ValueError("max_per_minute must be positive")
        self.interval = 60.0 / float(max_per_minute)
        self.clock, self.sleep = clock, sleep
        self._next = None

    def wait(self):
        now = self.clock()
        if self._next is not None and now < self._next:
            self.sleep(self._next - now)
            now = self._next
        self._next = now + self.interval


def skyserver_base_url(url):
    """The base that astroquery's ``skyserver_baseurl`` wants: scheme://host[:port][/prefix].

    A full endpoint URL (``.../dr12/en/tools/search/x_sql.aspx``) is cut
    before its ``/drNN/`` part; astroquery appends the DR12 search path.
    """
    m = re.match(r"^(https?://[^?#]*?)(/dr\d+(/.*)?)?/?$", url.strip())
    if not m:
        raise ValueError(f"not an http(s) SkyServer URL: {url!r}")
    return m.group(1).rstrip("/")


def _is_html(text):
    head = text.lstrip()[:512].lower()
    return head.startswith("<") or "<html" in head or "<!doctype" in head


def _error_table(text):
    """The message of SkyServer's one-column ``error_message`` answer (what astroquery looks for), else None."""
    lines = [ln.strip() for ln in text.strip().splitlines()[:4] if ln.strip() and not ln.startswith("#")]
    if lines and lines[0].lower() == "error_message":
        return " ".join(lines[1:]) or "no message"
    return None


def _looks_like_csv(text):
    """A body that is neither HTML nor an error text of SkyServer: data, never searched for SQL errors."""
    return not (_is_html(text) or text.lstrip()[:5].upper() == "ERROR" or _error_table(text))


def _check_number(value):
    if value == "" or value.lower() in ("null", "nan"):
        return
    try:
        float(value)
    except ValueError:
        raise PageError(f"value {value!r} is not a number") from None


def parse_csv_page(text, columns):
    """Check one SkyServer CSV answer and return its data lines (as text).

    Raises :class:`PageError` for an HTML page, an unexpected header, a row
    with the wrong number of fields or a non-numeric value.
    """
    if not text.strip():
        raise PageError("empty body")
    if _is_html(text):
        title = re.search(r"<title>(.*?)</title>", text, re.I | re.S)
        raise PageError("an HTML page instead of CSV" + (f" ({title.group(1).strip()[:80]})" if title else ""))
    lines = [ln.rstrip("\r") for ln in text.split("\n")]
    lines = [ln for ln in lines if ln.strip() != "" and not ln.startswith("#")]
    if not lines:
        raise PageError("no header line")
    header = next(csv.reader([lines[0]]))
    if [h.strip().lower() for h in header] != [c.lower() for c in columns]:
        raise PageError(f"unexpected header {lines[0][:200]!r}")
    data = lines[1:]
    for i, row in enumerate(csv.reader(data)):
        if len(row) != len(columns):
            raise PageError(f"row {i + 1} has {len(row)} fields instead of {len(columns)} (truncated?)")
        for v in row:
            _check_number(v)
    return data


def backoff(client, label, attempt, last, retry_after=0.0):
    """Wait before retry ``attempt + 1`` of a client's request, and log why.

    The wait is ``min(backoff_max, backoff_base * 2**attempt)`` seconds, or
    the server's ``Retry-After`` when longer; ``client`` has ``backoff_base``,
    ``backoff_max``, ``max_retries`` and ``sleep`` (SkyServer and CasJobs clients).
    """
    wait = max(retry_after, min(client.backoff_max, client.backoff_base * 2 ** attempt))
    log.warning("%s: attempt %d/%d failed (%s); retrying in %.1f s", label, attempt + 1,
                client.max_retries + 1, last, wait)
    client.sleep(wait)


class SkyServerClient:
    """Send SQL to a SkyServer through ``astroquery.sdss`` and get checked CSV back.

    Parameters
    ----------
    url : str
        SkyServer URL (base or full endpoint; see :func:`skyserver_base_url`).
    data_release : int
        SDSS data release (12).
    timeout : float
        Seconds per request.
    max_retries : int
        Retries per page after the first attempt.
    max_requests_per_minute : float
        Rate limit (SkyServer asks for at most 60).
    backoff : (float, float)
        ``(base, max)``: retry k waits ``min(max, base * 2**k)`` seconds (or
        the server's ``Retry-After`` if longer).
    """

    def __init__(self, url, data_release, timeout, max_retries, max_requests_per_minute, backoff=(2.0, 300.0),
                 sleep=time.sleep):
        from astroquery.sdss import SDSSClass  # imported here: astroquery is slow to import

        self.base_url = skyserver_base_url(url)
        self.data_release = int(data_release)
        self.timeout = float(timeout)
        self.max_retries = int(max_retries)
        self.limiter = RateLimiter(max_requests_per_minute, sleep=sleep)
        self.backoff_base, self.backoff_max = map(float, backoff)
        self.sleep = sleep
        self._sdss = SDSSClass()
        self.n_requests = 0

    def query_string(self, sql):
        """The URL query string astroquery sends for ``sql`` (what SkyServer's length limit counts)."""
        from urllib.parse import urlencode

        payload = self._sdss.query_sql_async(sql, data_release=self.data_release, get_query_payload=True)
        return urlencode(payload, doseq=True)

    def check_length(self, sql, label="query"):
        """Raise :class:`QueryError` if ``sql`` would exceed SkyServer's URL limit (never sent)."""
        n = len(self.query_string(sql))
        if n > Q.MAX_QUERY_STRING:
            raise QueryError(f"{label}: the encoded query string is {n} characters; SkyServer accepts at most "
                             f"{Q.MAX_QUERY_STRING} (maxQueryStringLength), so the query is not sent")
        return n

    def _send(self, sql):
        from astroquery.sdss import conf

        self.limiter.wait()
        self.n_requests += 1
        with conf.set_temp("skyserver_baseurl", self.base_url):
            return self._sdss.query_sql_async(sql, timeout=self.timeout, data_release=self.data_release,
                                              cache=False)

    def fetch(self, sql, columns, label, validate: Callable[[list], None] | None = None):
        """Run ``sql`` and return ``(text, data_lines)`` once the answer passes all checks.

        ``validate(data_lines)`` may add checks (raising :class:`PageError`).
        Transient failures are retried; a persistent one raises
        :class:`QueryError` naming ``label``.
        """
        self.check_length(sql, label)
        last = None
        for attempt in range(self.max_retries + 1):
            retry_after = 0.0
            try:
                resp = self._send(sql)
            except (requests.Timeout, requests.ConnectionError, requests.exceptions.ChunkedEncodingError,
                    requests.exceptions.ContentDecodingError) as err:
                last = f"{type(err).__name__}: {err}"
            else:
                status = resp.status_code
                sql_error = permanent_sql_error(resp.text) if status != 200 or not _looks_like_csv(resp.text) else None
                if status == 200 and not sql_error and _error_table(resp.text):
                    sql_error = _error_table(resp.text)  # SkyServer's own refusal of the query, whatever it says
                if sql_error:
                    raise QueryError(f"{label}: SkyServer refused the query (HTTP {status}): {sql_error} "
                                     "(an error in the query, which no retry can fix)")
                if status in RETRYABLE_STATUS:
                    last = f"HTTP {status}"
                    try:
                        retry_after = float(resp.headers.get("Retry-After", 0) or 0)
                    except ValueError:
                        retry_after = 0.0
                elif status != 200:
                    raise QueryError(f"{label}: SkyServer refused the query (HTTP {status}): "
                                     f"{resp.text.strip()[:300]}")
                else:
                    text = resp.text
                    try:
                        data = parse_csv_page(text, columns)
                        if validate is not None:
                            validate(data)
                        return text, data
                    except PageError as err:
                        last = str(err)
            if attempt < self.max_retries:
                backoff(self, label, attempt, last, retry_after)
        raise QueryError(f"{label}: no complete answer after {self.max_retries + 1} attempts; last error: {last}")


@dataclass
class PagedQuery:
    """A query fetched in keyset pages that overlap by one row.

    ``page_sql(after, limit)`` must return rows with key >= ``after``
    (inclusive; all rows for ``after=None``) in increasing key order;
    ``count_sql`` counts all rows; ``key`` names the key columns (ints).
    """

    name: str
    columns: Sequence[str]
    key: Sequence[str]
    page_sql: Callable
    count_sql: str
    identity: dict = field(default_factory=dict)

    def fingerprint(self, page_size, source=None):
        blob = json.dumps({"name": self.name, "columns": list(self.columns), "key": list(self.key),
                           "count_sql": self.count_sql, "page0": self.page_sql(None, page_size),
                           "identity": self.identity, "page_size": page_size, "source": source},
                          sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()


def catalog_paged_query(selection):
    """The Appendix A catalog query as a :class:`PagedQuery` keyed on specObjID."""
    return PagedQuery(
        name="catalog", columns=Q.CATALOG_QUERY_COLUMNS, key=("specObjID",),
        page_sql=lambda after, limit: Q.catalog_page_query(selection, None if after is None else after[0],
                                                           limit),
        count_sql=Q.catalog_count_query(selection), identity={"selection": dict(selection)})


def field_paged_query(rerun):
    """The ``Field`` table of ``rerun`` as a :class:`PagedQuery` keyed on (run, camcol, field)."""
    return PagedQuery(
        name="field", columns=Q.FIELD_COLUMNS, key=("run", "camcol", "field"),
        page_sql=lambda after, limit: Q.field_page_query(rerun, after, limit),
        count_sql=Q.field_count_query(rerun), identity={"rerun": int(rerun)})


def _keys(data_lines, idx):
    out = []
    for row in csv.reader(data_lines):
        try:
            out.append(tuple(int(float(row[i])) if "." in row[i] or "e" in row[i].lower() else int(row[i])
                             for i in idx))
        except (ValueError, IndexError):
            raise PageError(f"key {[row[i] for i in idx]} is not an integer") from None
    return out


def _page_path(pages_dir, k):
    return Path(pages_dir) / f"page-{k:05d}.csv"


def source_identity(client, mock_db=None):
    """What the pages come from: the SkyServer and release, or the mock database file.

    Part of the pages' fingerprint, so that pages of a regenerated mock
    database (same SQL, other rows) are never reused.
    """
    if mock_db is not None:
        st = Path(mock_db).stat()
        return f"sqlite:{Path(mock_db).resolve()}:{st.st_size}:{st.st_mtime_ns}"
    return f"{client.base_url} DR{client.data_release}"


def _start_pages(pq, pages_dir, page_size, source):
    """Make ``pages_dir`` hold pages of this query only: discard pages of another fingerprint."""
    pages_dir.mkdir(parents=True, exist_ok=True)
    meta_path = pages_dir / "query.json"
    fp = pq.fingerprint(page_size, source)
    meta = json.loads(meta_path.read_text()) if meta_path.exists() else None
    if meta is not None and meta.get("fingerprint") == fp:
        return
    old = sorted(pages_dir.glob("page-*.csv")) + sorted(pages_dir.glob("count.csv"))
    if old:
        log.info("%s: %d kept pages belong to another query; discarding them", pq.name, len(old))
    for p in old:
        p.unlink()
    meta = {"fingerprint": fp, "query": pq.name, "page_size": page_size, "source": source,
            "first_page_sql": pq.page_sql(None, page_size)}
    atomic_write_bytes(meta_path, json.dumps(meta, indent=1).encode())


def _count(client, pq, pages_dir):
    """The query's row count, kept in ``count.csv``."""
    count_path = pages_dir / "count.csv"
    if count_path.exists():
        count_lines = parse_csv_page(count_path.read_text(), ["n"])
    else:
        text, count_lines = client.fetch(pq.count_sql, ["n"], f"{pq.name} count ({count_path})")
        atomic_write_bytes(count_path, text.encode())
    if len(count_lines) != 1:
        raise QueryError(f"{pq.name}: the count answer {count_path} has {len(count_lines)} rows, not 1")
    return int(float(count_lines[0]))


def _page_check(key_idx, expect, after):
    """The check of one page's data lines: ``expect`` rows, increasing keys, the first one ``after``."""
    def check(data):
        if len(data) != expect:
            raise PageError(f"{len(data)} rows instead of the {expect} the count predicts (truncated?)")
        keys = _keys(data, key_idx)
        if any(b <= a for a, b in zip(keys, keys[1:])):
            raise PageError("keys not strictly increasing")
        if after is not None and keys and keys[0] != after:
            raise PageError(f"first key {keys[0]} is not the overlap key {after}")
    return check


def _page(client, pq, path, k, after, page_size, check):
    """Page ``k``'s data lines: the kept file when it passes ``check``, else fetched (and kept)."""
    if path.exists():
        try:
            data = parse_csv_page(path.read_text(), pq.columns)
            check(data)
            log.info("%s: reusing kept page %d (%d rows)", pq.name, k, len(data))
            return data
        except PageError as err:
            log.warning("%s: kept page %s is unusable (%s); fetching it again", pq.name, path, err)
            path.unlink()
    text, data = client.fetch(pq.page_sql(after, page_size), pq.columns, f"{pq.name} page {k} ({path})",
                              validate=check)
    atomic_write_bytes(path, text.encode())
    log.info("%s: page %d received (%d rows)", pq.name, k, len(data))
    return data


def _assemble(pq, pages, total):
    """The pages' rows, the overlap rows once, as a DataFrame (key columns int64)."""
    lines = list(pages[0])
    for data in pages[1:]:
        lines.extend(data[1:])
    if len(lines) != total:
        raise QueryError(f"{pq.name}: assembled {len(lines)} rows but the count is {total}")
    text = ",".join(pq.columns) + "\n" + "\n".join(lines) + ("\n" if lines else "")
    dtypes = {c: "int64" for c in pq.key}
    return pd.read_csv(io.StringIO(text), dtype=dtypes, na_values=["null", "NULL"], keep_default_na=True)


def fetch_paged(client, pq, pages_dir, page_size, source=None):
    """Fetch all rows of ``pq``, keeping each page in ``pages_dir``; return a DataFrame.

    Pages already in ``pages_dir`` from an earlier run of the same query on
    the same ``source`` (same fingerprint in ``query.json``) are reused.
    Returns the rows in key order, each exactly once, after checking their
    number against the count.
    """
    page_size = int(page_size)
    if page_size < 2:
        raise ValueError("page_size must be at least 2 (pages overlap by one row)")
    pages_dir = Path(pages_dir)
    _start_pages(pq, pages_dir, page_size, source)
    key_idx = [[c.lower() for c in pq.columns].index(k.lower()) for k in pq.key]
    total = _count(client, pq, pages_dir)
    log.info("%s: %d rows to fetch in pages of %d", pq.name, total, page_size)
    pages = []  # list of data-line lists
    n_rows = 0  # distinct rows so far
    k = 0
    refetches = 0
    while True:
        path = _page_path(pages_dir, k)
        after = None if k == 0 else _keys(pages[-1][-1:], key_idx)[0]
        expect = min(page_size, total if k == 0 else total - n_rows + 1)
        data = _page(client, pq, path, k, after, page_size, _page_check(key_idx, expect, after))
        if k > 0 and data[0] != pages[-1][-1]:
            # the overlap row differs: the previous page's last row was damaged
            refetches += 1
            if refetches > client.max_retries:
                raise QueryError(f"{pq.name}: the last row of page {k - 1} ({_page_path(pages_dir, k - 1)}) "
                                 f"and the first row of page {k} ({path}) keep differing")
            log.warning("%s: overlap row of pages %d and %d differs; fetching both again", pq.name, k - 1, k)
            path.unlink()
            _page_path(pages_dir, k - 1).unlink()
            n_rows -= len(pages.pop()) - (1 if k - 1 > 0 else 0)
            k -= 1
            continue
        pages.append(data)
        n_rows += len(data) - (1 if k > 0 else 0)
        # done when every row is in and the last one was received twice: the
        # final page is the one-row page that repeats the last row
        if total == 0 or (k > 0 and n_rows >= total and len(data) == 1):
            break
        k += 1
    # stale pages beyond the end (from a query that had more rows) would confuse a rerun
    for p in sorted(pages_dir.glob("page-*.csv")):
        if int(p.stem.split("-")[1]) > k:
            p.unlink()
    df = _assemble(pq, pages, total)
    log.info("%s: %d rows in %d pages (%d requests this run)", pq.name, len(df), len(pages), client.n_requests)
    return df


def client_from_config(sdss_cfg, url=None, **kw):
    """A :class:`SkyServerClient` from the ``sdss`` config section (``url`` overrides)."""
    return SkyServerClient(url or sdss_cfg["skyserver_url"], data_release=sdss_cfg["data_release"],
                           timeout=sdss_cfg["timeout_s"], max_retries=sdss_cfg["max_retries"],
                           max_requests_per_minute=sdss_cfg["max_requests_per_minute"], **kw)


@contextlib.contextmanager
def open_client(sdss_cfg, mock_db=None):
    """``(client, source)``: the real SkyServer, or ``mock_db`` served on loopback for the block.

    The one place that decides between the mock and the real service (used
    by ``query`` and ``frame-index``); ``source`` is :func:`source_identity`.
    """
    if mock_db:
        from .skyserver_server import serve_sqlite

        with serve_sqlite(mock_db) as server:
            log.info("mock SkyServer on %s backed by %s", server.url, mock_db)
            client = client_from_config(sdss_cfg, url=server.url)
            yield client, source_identity(client, mock_db)
    else:
        client = client_from_config(sdss_cfg)
        yield client, source_identity(client)


def finish_catalog(rows, out, rejected_out=None):
    """Query rows -> the catalog: one spectrum per galaxy, derived columns, schema; written atomically.

    Repeat spectra left out and rows failing the schema are both listed in
    ``rejected_out`` (``specObjID, reason``) and counted in the log.
    """
    from ..catalog import SPECTRUM_RULE, one_spectrum_per_galaxy, validate_catalog

    if len(rows) == 0:
        raise QueryError("the catalog query returned no rows")
    kept, repeats = one_spectrum_per_galaxy(rows)
    log.info("catalog: %d spectra of %d galaxies; %d repeat spectra left out (%s)", len(rows), len(kept),
             len(repeats), SPECTRUM_RULE)
    good, rejected = validate_catalog(Q.catalog_from_rows(kept), source=str(out))
    if len(rejected):
        log.warning("catalog: %d rows rejected by the schema (see %s)", len(rejected), rejected_out)
    if rejected_out is not None:
        with atomic_path(rejected_out) as tmp:
            pd.concat([repeats, rejected], ignore_index=True).to_csv(tmp, index=False)
    with atomic_path(out) as tmp:
        good.to_parquet(tmp, index=False)
    log.info("catalog: %d rows written to %s", len(good), out)
    return good


def run_catalog_query(client, selection, pages_dir, page_size, out, rejected_out=None, source=None):
    """Fetch the catalog through SkyServer SQL paging, then :func:`finish_catalog`."""
    rows = fetch_paged(client, catalog_paged_query(selection), pages_dir, page_size, source)
    return finish_catalog(rows, out, rejected_out)
