"""The SQL text of the catalog and field queries (Pasquet et al. 2019, Appendix A).

The query is written once, in the SkyServer dialect (Microsoft SQL Server), and
sent as is to both the real SkyServer/CasJobs and the loopback ones. The only
dialect differences it relies on, ``SELECT TOP n`` and CasJobs' ``INTO
mydb.x``, are translated for SQLite in ONE place, :func:`to_sqlite`, which the
loopback servers apply to every command they receive. Everything else (bit
tests, arithmetic, joins, ``ORDER BY``) is in the common subset of both.

SkyServer takes the SQL in the URL of a GET and refuses query strings over
:data:`MAX_QUERY_STRING` (2,048) characters, so the SELECT list holds plain
column references only (no ``AS`` where the name is already right, no
derived columns: :func:`catalog_from_rows` computes ``dered_petro_{b}``), and
optional spaces are left out; a DR12 page query is about 1,150 characters
once URL-encoded (``tests/test_query_limits.py`` checks every page of the
plan).

Pages are fetched by keyset on ``specObjID``: page k asks for the first
``page_size`` rows with ``specObjID`` from the last one of page k-1 on, so no
page approaches SkyServer's 500,000-row cap and every page is reproducible.
"""

from __future__ import annotations

import re

import pandas as pd

from .. import BANDS

__all__ = [
    "CATALOG_QUERY_COLUMNS", "FIELD_COLUMNS", "MAIN_GALAXY_TARGET_BIT", "MAX_QUERY_STRING", "MAX_ROWS",
    "catalog_select", "catalog_from_rows", "catalog_where", "catalog_page_query", "catalog_count_query",
    "field_page_query", "field_count_query", "to_sqlite", "into_table",
    "catalog_into_query", "mydb_page_query", "mydb_count_query",
]

MAIN_GALAXY_TARGET_BIT = 64
"""``primTarget`` bit of the Main Galaxy Sample (TARGET_GALAXY = 0x40)."""

MAX_QUERY_STRING = 2048
"""SkyServer's ``maxQueryStringLength``: the longest URL query string it accepts."""

MAX_ROWS = 500_000
"""SkyServer returns at most this many rows per query."""


def _catalog_select_items():
    """(SQL expression, column name) of the catalog query, Appendix A's columns.

    Plain column references only (their name is the column SkyServer returns),
    so that the page query fits SkyServer's 2,048-character URL limit; the
    dereddened magnitudes are computed by :func:`catalog_from_rows`.
    """
    items = [("za.specObjID", "specObjID"), ("po.objID", "objID"), ("po.ra", "ra"), ("po.dec", "dec"),
             ("za.z", "z"), ("za.zErr", "zErr"), ("za.sciencePrimary", "sciencePrimary")]
    for q in ("petroMag", "petroMagErr", "extinction"):
        items += [(f"po.{q}_{b}", f"{q}_{b}") for b in BANDS]
    items += [("zi.e_bv_sfd", "e_bv_sfd")]
    items += [(f"po.{c}", c) for c in ("expAB_r", "deVAB_r", "fracDeV_r", "petroR50_r",
                                        "run", "rerun", "camcol", "field")]
    items += [("zp.z AS zphot", "zphot"), ("zp.zErr AS dzphot", "dzphot")]
    # per-object PSF FWHM (arcsec) and sky (nanomaggies/arcsec^2) at the
    # galaxy's position, PhotoObjAll (the paper's "PSF FWHMs and sky
    # background values in all bands")
    items += [(f"po.psffwhm_{b}", f"psffwhm_{b}") for b in BANDS]
    items += [(f"po.sky_{b}", f"sky_{b}") for b in BANDS]
    return items


_CATALOG_ITEMS = _catalog_select_items()
CATALOG_QUERY_COLUMNS = tuple(name for _, name in _CATALOG_ITEMS)
"""Columns of the catalog query, in the order SkyServer returns them."""

FIELD_COLUMNS = (
    ("run", "rerun", "camcol", "field", "mjd_r", "ra", "dec", "raMin", "raMax", "decMin", "decMax")
    + tuple(f"{q}_{b}" for q in ("psfWidth", "sky", "gain", "darkVariance") for b in BANDS)
)
"""Columns read from the ``Field`` table (DR12 names) for the frame index."""


def catalog_select():
    """The SELECT list of the catalog query."""
    return ",".join(expr for expr, _ in _CATALOG_ITEMS)


def catalog_from_rows(df):
    """The catalog columns (:data:`photoz.catalog.SCHEMA`) from the query's rows.

    ``dered_petro_{b} = petroMag_{b} - extinction_{b}`` (Appendix A's
    ``dered_petro_r``), ``ebv = e_bv_sfd`` (galSpecInfo, SFD98 E(B-V)); the
    other columns are kept under their own names; ``petroMag_{b}`` and
    ``sciencePrimary`` (used to pick one spectrum per galaxy) are dropped.
    """
    from ..catalog import SCHEMA

    out = df.copy()
    for b in BANDS:
        out[f"dered_petro_{b}"] = pd.to_numeric(out[f"petroMag_{b}"]) - pd.to_numeric(out[f"extinction_{b}"])
    out["ebv"] = out["e_bv_sfd"]
    return out[list(SCHEMA)]


def _num(x):
    """A number literal that both dialects parse identically."""
    return repr(float(x)) if not float(x).is_integer() else f"{float(x):.1f}"


def catalog_where(selection):
    """The WHERE clause of Appendix A with the cuts of ``selection`` (config section).

    GALAXY class, zWarning = 0, science targets of the legacy SDSS survey,
    Main Galaxy Sample target bit, clean photometry outside masks,
    dereddened Petrosian r <= r_max, z_min < z < z_max. Written without
    optional spaces: every character counts against SkyServer's URL limit.
    """
    r_max, z_min, z_max = selection["r_max"], selection["z_min"], selection["z_max"]
    return (
        f"za.z>{_num(z_min)} AND za.z<{_num(z_max)} AND za.zWarning=0"
        " AND za.targetType='SCIENCE' AND za.survey='sdss'"
        f" AND za.class='GALAXY' AND (zi.primtarget&{MAIN_GALAXY_TARGET_BIT})>0"
        " AND po.clean=1 AND po.insideMask=0"
        f" AND po.petroMag_r-po.extinction_r<={_num(r_max)}"
    )


_CATALOG_FROM = (
    "FROM SpecObjAll za"
    " JOIN PhotoObjAll po ON po.objID=za.bestObjID"
    " JOIN Photoz zp ON zp.objID=za.bestObjID"
    " JOIN galSpecInfo zi ON zi.specObjID=za.specObjID"
)


def catalog_page_query(selection, after, limit):
    """One keyset page of the catalog query (SkyServer dialect).

    ``after`` is the last ``specObjID`` of the previous page (None for the
    first); the page starts AT it (inclusive), so consecutive pages overlap by
    one row, which the client uses to check that no page was cut short.
    """
    if not 1 <= int(limit) <= MAX_ROWS:
        raise ValueError(f"page size must be between 1 and SkyServer's {MAX_ROWS} rows, got {limit}")
    keyset = "" if after is None else f" AND za.specObjID>={int(after)}"
    return (f"SELECT TOP {int(limit)} {catalog_select()} {_CATALOG_FROM} "
            f"WHERE {catalog_where(selection)}{keyset} ORDER BY za.specObjID")


def catalog_count_query(selection):
    """Number of rows the whole catalog query returns (to check completeness)."""
    return f"SELECT COUNT(*) AS n {_CATALOG_FROM} WHERE {catalog_where(selection)}"


def catalog_into_query(selection, table):
    """The whole catalog query as a CasJobs batch job writing MyDB table ``table``.

    Appendix A's form (``SELECT ... INTO mydb.SDSS_DR12 FROM ...``); the MyDB
    table is then paged out with :func:`mydb_page_query`.
    """
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", table):
        raise ValueError(f"not a MyDB table name: {table!r}")
    return (f"SELECT {catalog_select()} INTO mydb.{table} {_CATALOG_FROM} "
            f"WHERE {catalog_where(selection)}")


def mydb_page_query(table, columns, key, after=None, limit=50000):
    """One keyset page (overlapping by one row) of a MyDB table, ordered by ``key``."""
    if not 1 <= int(limit) <= MAX_ROWS:
        raise ValueError(f"page size must be between 1 and {MAX_ROWS} rows, got {limit}")
    keyset = "" if after is None else f" WHERE {key}>={int(after)}"
    return f"SELECT TOP {int(limit)} {','.join(columns)} FROM {table}{keyset} ORDER BY {key}"


def mydb_count_query(table):
    """Number of rows of a MyDB table."""
    return f"SELECT COUNT(*) AS n FROM {table}"


def _field_where(rerun, after):
    cond = f"fi.rerun={int(rerun)}"
    if after is not None:
        r, c, f = (int(v) for v in after)
        cond += (f" AND (fi.run>{r} OR (fi.run={r} AND fi.camcol>{c})"
                 f" OR (fi.run={r} AND fi.camcol={c} AND fi.field>={f}))")
    return cond


def field_page_query(rerun, after, limit):
    """One keyset page of the ``Field`` table; ``after`` is a (run, camcol, field) tuple."""
    if not 1 <= int(limit) <= MAX_ROWS:
        raise ValueError(f"page size must be between 1 and SkyServer's {MAX_ROWS} rows, got {limit}")
    cols = ",".join(f"fi.{c}" for c in FIELD_COLUMNS)
    return (f"SELECT TOP {int(limit)} {cols} FROM Field fi WHERE {_field_where(rerun, after)}"
            " ORDER BY fi.run,fi.camcol,fi.field")


def field_count_query(rerun):
    """Number of fields of ``rerun`` in the ``Field`` table."""
    return f"SELECT COUNT(*) AS n FROM Field fi WHERE {_field_where(rerun, None)}"


_TOP = re.compile(r"^\s*SELECT\s+TOP\s+(\d+)\s+", re.IGNORECASE)
_INTO = re.compile(r"\bINTO\s+mydb\.(\w+)\s+", re.IGNORECASE)
_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"'})


def into_table(sql):
    """The MyDB table a ``SELECT ... INTO mydb.x`` command writes, or None."""
    m = _INTO.search(sql)
    return m.group(1) if m else None


def to_sqlite(sql):
    """Translate a SkyServer/CasJobs (MS-SQL) command into SQLite.

    The one place where the two dialects differ, used by the loopback
    SkyServer and CasJobs and by the mock's own checks: ``SELECT TOP n ...``
    becomes ``SELECT ... LIMIT n``; ``INTO mydb.x`` (CasJobs) is removed
    (the caller creates the table, see :func:`into_table`); curly quotes from
    a copy of the paper's PDF become straight ones; a trailing ``;`` goes.
    Bitwise ``&``, arithmetic, quoted strings, ``AS`` aliases, joins and
    ``ORDER BY`` are common to both.
    """
    sql = sql.translate(_QUOTES).strip().rstrip(";")
    sql = _INTO.sub(" ", sql)
    m = _TOP.match(sql)
    if m:
        sql = "SELECT " + sql[m.end():] + f" LIMIT {int(m.group(1))}"
    return sql
