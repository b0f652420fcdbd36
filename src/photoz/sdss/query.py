"""The SQL text of the catalog and field queries (Pasquet et al. 2019, Appendix A).

The query is written once, in the SkyServer dialect (Microsoft SQL Server), and
sent as is to both the real SkyServer and the mock one. The only dialect
difference it relies on, ``SELECT TOP n``, is translated for SQLite in ONE
place, :func:`to_sqlite`, which the mock server applies to every command it
receives. Everything else (bit tests, arithmetic, joins, ``ORDER BY``) is
written in the common subset of both dialects.

Pages are fetched by keyset on ``specObjID``: page k asks for the first
``page_size`` rows with ``specObjID`` from the last one of page k-1 on, so no
page approaches SkyServer's 500,000-row cap and every page is reproducible.
"""

from __future__ import annotations

import re

from .. import BANDS

__all__ = [
    "CATALOG_COLUMNS", "FIELD_COLUMNS", "MAIN_GALAXY_TARGET_BIT",
    "catalog_select", "catalog_where", "catalog_page_query", "catalog_count_query",
    "field_page_query", "field_count_query", "to_sqlite",
]

MAIN_GALAXY_TARGET_BIT = 64
"""``primTarget`` bit of the Main Galaxy Sample (TARGET_GALAXY = 0x40)."""

R_EXTINCTION_COEFF = 2.751
"""A_r / E(B-V) used to turn ``extinction_r`` into E(B-V)."""


def _catalog_select_items():
    items = [
        ("za.specObjID", "specObjID"), ("po.objID", "objID"), ("po.ra", "ra"), ("po.dec", "dec"),
        ("za.z", "z"), ("za.zErr", "zErr"),
    ]
    items += [(f"(po.petroMag_{b} - po.extinction_{b})", f"dered_petro_{b}") for b in BANDS]
    items += [(f"po.petroMagErr_{b}", f"petroMagErr_{b}") for b in BANDS]
    items += [(f"po.extinction_{b}", f"extinction_{b}") for b in BANDS]
    items += [(f"(po.extinction_r / {R_EXTINCTION_COEFF})", "ebv")]
    items += [("po.expAB_r", "expAB_r"), ("po.deVAB_r", "deVAB_r"), ("po.fracDeV_r", "fracDeV_r"),
              ("po.petroR50_r", "petroR50_r")]
    items += [("po.run", "run"), ("po.rerun", "rerun"), ("po.camcol", "camcol"), ("po.field", "field")]
    items += [("zp.z", "zphot"), ("zp.zErr", "dzphot")]
    items += [(f"fi.psfWidth_{b}", f"psfWidth_{b}") for b in BANDS]
    items += [(f"fi.sky_{b}", f"sky_{b}") for b in BANDS]
    return items


_CATALOG_ITEMS = _catalog_select_items()
CATALOG_COLUMNS = tuple(alias for _, alias in _CATALOG_ITEMS)
"""Columns of the catalog query, in the order SkyServer returns them."""

FIELD_COLUMNS = (
    ("run", "rerun", "camcol", "field", "mjd_r", "ra", "dec", "raMin", "raMax", "decMin", "decMax")
    + tuple(f"{q}_{b}" for q in ("psfWidth", "sky", "gain", "darkVariance") for b in BANDS)
)
"""Columns read from the ``Field`` table (DR12 names) for the frame index."""


def catalog_select():
    """The SELECT list of the catalog query, one ``expression AS alias`` per column."""
    return ",\n  ".join(f"{expr} AS {alias}" for expr, alias in _CATALOG_ITEMS)


def _num(x):
    """A number literal that both dialects parse identically."""
    return repr(float(x)) if not float(x).is_integer() else f"{float(x):.1f}"


def catalog_where(selection):
    """The WHERE clause of Appendix A with the cuts of ``selection`` (config section).

    GALAXY class, zWarning = 0, science targets of the legacy SDSS survey,
    Main Galaxy Sample target bit, clean photometry outside masks,
    dereddened Petrosian r <= r_max, z_min < z < z_max.
    """
    r_max, z_min, z_max = selection["r_max"], selection["z_min"], selection["z_max"]
    return (
        f"za.z > {_num(z_min)} AND za.z < {_num(z_max)} AND za.zWarning = 0\n"
        "  AND za.targetType = 'SCIENCE' AND za.survey = 'sdss'\n"
        f"  AND za.class = 'GALAXY' AND (zi.primtarget & {MAIN_GALAXY_TARGET_BIT}) > 0\n"
        "  AND po.clean = 1 AND po.insideMask = 0\n"
        f"  AND (po.petroMag_r - po.extinction_r) <= {_num(r_max)}"
    )


_CATALOG_FROM = (
    "FROM SpecObjAll AS za\n"
    "  JOIN PhotoObjAll AS po ON (po.objID = za.bestObjID)\n"
    "  JOIN Photoz AS zp ON (zp.objID = za.bestObjID)\n"
    "  JOIN galSpecInfo AS zi ON (zi.specObjID = za.specObjID)\n"
    "  JOIN Field AS fi ON (fi.run = po.run AND fi.camcol = po.camcol AND fi.field = po.field"
    " AND fi.rerun = po.rerun)"
)


def catalog_page_query(selection, after=None, limit=50000):
    """One keyset page of the catalog query (SkyServer dialect).

    ``after`` is the last ``specObjID`` of the previous page (None for the
    first); the page starts AT it (inclusive), so consecutive pages overlap by
    one row, which the client uses to check that no page was cut short.
    """
    if int(limit) < 1:
        raise ValueError(f"page size must be positive, got {limit}")
    keyset = "" if after is None else f"\n  AND za.specObjID >= {int(after)}"
    return (f"SELECT TOP {int(limit)}\n  {catalog_select()}\n{_CATALOG_FROM}\n"
            f"WHERE {catalog_where(selection)}{keyset}\nORDER BY za.specObjID")


def catalog_count_query(selection):
    """Number of rows the whole catalog query returns (to check completeness)."""
    return f"SELECT COUNT(*) AS n\n{_CATALOG_FROM}\nWHERE {catalog_where(selection)}"


def _field_where(rerun, after):
    cond = f"fi.rerun = {int(rerun)}"
    if after is not None:
        r, c, f = (int(v) for v in after)
        cond += (f"\n  AND (fi.run > {r} OR (fi.run = {r} AND fi.camcol > {c})"
                 f" OR (fi.run = {r} AND fi.camcol = {c} AND fi.field >= {f}))")
    return cond


def field_page_query(rerun=301, after=None, limit=50000):
    """One keyset page of the ``Field`` table; ``after`` is a (run, camcol, field) tuple."""
    cols = ", ".join(f"fi.{c} AS {c}" for c in FIELD_COLUMNS)
    return (f"SELECT TOP {int(limit)} {cols}\nFROM Field AS fi\nWHERE {_field_where(rerun, after)}\n"
            "ORDER BY fi.run, fi.camcol, fi.field")


def field_count_query(rerun=301):
    """Number of fields of ``rerun`` in the ``Field`` table."""
    return f"SELECT COUNT(*) AS n FROM Field AS fi WHERE {_field_where(rerun, None)}"


_TOP = re.compile(r"^\s*SELECT\s+TOP\s+(\d+)\s+", re.IGNORECASE)


def to_sqlite(sql):
    """Translate a SkyServer (MS-SQL) command of this module into SQLite.

    This is the only place where the two dialects differ: ``SELECT TOP n ...``
    becomes ``SELECT ... LIMIT n``. Bitwise ``&``, arithmetic, quoted strings,
    ``AS`` aliases, joins and ``ORDER BY`` are common to both.
    """
    sql = sql.strip().rstrip(";")
    m = _TOP.match(sql)
    if m:
        sql = "SELECT " + sql[m.end():] + f" LIMIT {int(m.group(1))}"
    return sql
