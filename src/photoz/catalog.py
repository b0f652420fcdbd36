"""The galaxy catalog (``results/catalog.parquet``): schema and validation.

``SCHEMA`` fixes, for every column of the catalog contract
(docs/dataflow.md, section 2), its type, whether it is required (no NaN
allowed) and its allowed range. :func:`validate_catalog` casts a table to
the schema and checks it: unknown or missing columns and duplicated IDs are
errors; rows whose required values are missing or out of range are separated
out (with the reason) so that the caller can report them and decide.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd

from . import BANDS

__all__ = ["Column", "SCHEMA", "CatalogError", "validate_catalog", "SDSS_SENTINELS", "one_spectrum_per_galaxy",
           "SPECTRUM_RULE"]

log = logging.getLogger("photoz.catalog")


@dataclass(frozen=True)
class Column:
    """One catalog column: numpy dtype, required (no NaN) and inclusive range."""

    dtype: str
    required: bool = True
    lo: float | None = None
    hi: float | None = None


def _schema():
    s = {
        "specObjID": Column("int64", True, 1, None),
        "objID": Column("int64", True, 1, None),
        "ra": Column("float64", True, 0.0, 360.0),
        "dec": Column("float64", True, -90.0, 90.0),
        "z": Column("float64", True, 0.0, 7.0),
        "zErr": Column("float64", False, 0.0, None),
    }
    for b in BANDS:
        s[f"dered_petro_{b}"] = Column("float64", True, 0.0, 40.0)
    for b in BANDS:
        s[f"petroMagErr_{b}"] = Column("float64", False, 0.0, None)
    for b in BANDS:
        s[f"extinction_{b}"] = Column("float64", True, 0.0, 30.0)
    s["ebv"] = Column("float64", True, 0.0, 10.0)  # galSpecInfo.e_bv_sfd (SFD98), as in Appendix A
    s["expAB_r"] = Column("float64", False, 0.0, 1.0)
    s["deVAB_r"] = Column("float64", False, 0.0, 1.0)
    s["fracDeV_r"] = Column("float64", False, 0.0, 1.0)
    s["petroR50_r"] = Column("float64", False, 0.0, None)
    s["run"] = Column("int32", True, 1, 999999)
    s["rerun"] = Column("int32", True, 0, 9999)
    s["camcol"] = Column("int32", True, 1, 6)
    s["field"] = Column("int32", True, 0, 9999)
    s["zphot"] = Column("float64", False, -1.0, 7.0)
    s["dzphot"] = Column("float64", False, 0.0, None)
    for b in BANDS:
        s[f"psffwhm_{b}"] = Column("float64", False, 0.0, 30.0)
    for b in BANDS:
        s[f"sky_{b}"] = Column("float64", False, None, None)  # PhotoObjAll, per object
    return s


SCHEMA = _schema()
"""Column name -> :class:`Column`, in the catalog's column order."""

SDSS_SENTINELS = (-9999.0, -999.0, -99999.0)
"""Values SDSS stores for "not measured"; read as missing (NaN) in float columns."""


class CatalogError(ValueError):
    """The catalog does not match :data:`SCHEMA`."""


def validate_catalog(df, source="catalog", max_rejected_fraction=0.01):
    """Cast ``df`` to :data:`SCHEMA` and check it.

    Parameters
    ----------
    df : pandas.DataFrame
        The catalog as read (column names as in the schema).
    source : str
        Name used in error messages (a file name).
    max_rejected_fraction : float
        More rejected rows than this fraction is an error (a broken query,
        not a few bad galaxies).

    Returns
    -------
    good : pandas.DataFrame
        Rows that pass, typed and in schema order.
    rejected : pandas.DataFrame
        ``specObjID, reason`` for each rejected row.

    Raises
    ------
    CatalogError
        Missing or unknown columns, non-numeric values, IDs that do not fit
        int64, duplicated ``specObjID``/``objID``, or too many rejected rows.
    """
    missing = [c for c in SCHEMA if c not in df.columns]
    extra = [c for c in df.columns if c not in SCHEMA]
    if missing or extra:
        raise CatalogError(f"{source}: columns do not match the catalog schema; "
                           f"missing {missing}, unknown {extra}")
    out = pd.DataFrame(index=pd.RangeIndex(len(df)))
    reasons = pd.Series("", index=out.index, dtype=object)
    for name, col in SCHEMA.items():
        values = df[name].reset_index(drop=True)
        out[name] = _as_int(values, name, col, source) if col.dtype.startswith("int") else _as_float(values, name, source)
        _check_range(out, reasons, name, col, source)
    for key in ("specObjID", "objID"):
        dup = out[key].duplicated(keep=False)
        if dup.any():
            ids = out.loc[dup, key].unique()[:5].tolist()
            raise CatalogError(f"{source}: {int(dup.sum())} rows share a {key}, e.g. {ids}")
    rej_mask = reasons != ""
    rejected = pd.DataFrame({"specObjID": out.loc[rej_mask, "specObjID"].to_numpy(),
                             "reason": reasons[rej_mask].str.rstrip(";").to_numpy()})
    good = out.loc[~rej_mask].reset_index(drop=True)
    if len(out) and len(rejected) > max_rejected_fraction * len(out):
        raise CatalogError(f"{source}: {len(rejected)} of {len(out)} rows fail the schema "
                           f"(more than {max_rejected_fraction:.1%}); first: "
                           f"{rejected.head(3).to_dict('records')}")
    return good, rejected


def _as_int(values, name, col, source):
    """An integer column cast to its schema dtype; a non-integer, empty or out-of-dtype value is an error."""
    num = pd.to_numeric(values, errors="coerce")
    bad = num.isna() & values.notna()
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise CatalogError(f"{source}: column {name} row {i} holds {values[i]!r}, not an integer")
    if num.isna().any():
        i = int(np.flatnonzero(num.isna().to_numpy())[0])
        raise CatalogError(f"{source}: required column {name} is empty in row {i}")
    if num.dtype.kind == "f" and not np.all(np.mod(num.to_numpy(), 1) == 0):
        raise CatalogError(f"{source}: column {name} holds non-integer values")
    info = np.iinfo(col.dtype)
    if num.dtype.kind in "iu":
        arr = num.to_numpy()
        if arr.size and (arr.min() < info.min or arr.max() > info.max):
            raise CatalogError(f"{source}: column {name} exceeds the {col.dtype} range")
    return num.astype(col.dtype)


def _as_float(values, name, source):
    """A float64 column, SDSS's sentinels as NaN; a non-numeric value is an error."""
    num = pd.to_numeric(values, errors="coerce")
    bad = num.isna() & values.notna() & (values.astype(str).str.strip() != "")
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise CatalogError(f"{source}: column {name} row {i} holds {values[i]!r}, not a number")
    return num.astype("float64").mask(num.isin(SDSS_SENTINELS))


def _check_range(out, reasons, name, col, source):
    """Reject rows whose required ``name`` is missing or out of range; an optional one out of range becomes NaN."""
    arr = out[name].to_numpy(dtype="float64")
    finite = np.isfinite(arr)
    if col.required:
        reasons[~finite] += f"{name} missing;"
    lo_bad = finite & (arr < col.lo) if col.lo is not None else np.zeros(len(arr), bool)
    hi_bad = finite & (arr > col.hi) if col.hi is not None else np.zeros(len(arr), bool)
    oor = lo_bad | hi_bad
    if col.required:
        reasons[oor] += f"{name} out of range;"
    elif oor.any():
        # optional column: an out-of-range value is unusable, not fatal
        log.warning("%s: %d values of optional column %s outside [%s, %s] set to NaN",
                    source, int(oor.sum()), name, col.lo, col.hi)
        out.loc[oor, name] = np.nan


SPECTRUM_RULE = ("one spectrum per galaxy (bestObjID): the sciencePrimary one; if none or several are "
                 "primary, the smallest zErr, then the smallest specObjID")
"""How :func:`one_spectrum_per_galaxy` chooses among repeat spectra of a galaxy."""


def one_spectrum_per_galaxy(df):
    """Keep one spectrum per galaxy, as the paper's sample holds each galaxy once.

    ``SpecObjAll`` holds every spectrum, repeat observations of a galaxy
    included (same ``bestObjID``, here ``objID``); the rule is
    :data:`SPECTRUM_RULE`. Needs the columns ``specObjID, objID, zErr,
    sciencePrimary``.

    Returns
    -------
    kept : DataFrame
        One row per ``objID``, in the input's order.
    dropped : DataFrame
        ``specObjID, reason`` of each repeat spectrum left out (naming the
        kept one).
    """
    need = [c for c in ("specObjID", "objID", "zErr", "sciencePrimary") if c not in df.columns]
    if need:
        raise CatalogError(f"one_spectrum_per_galaxy: columns {need} missing")
    d = df.reset_index(drop=True)
    primary = pd.to_numeric(d["sciencePrimary"], errors="coerce").fillna(0).to_numpy() == 1
    zerr = pd.to_numeric(d["zErr"], errors="coerce").to_numpy(dtype="float64")
    zerr = np.where(np.isfinite(zerr) & (zerr >= 0), zerr, np.inf)
    order = np.lexsort((d["specObjID"].to_numpy(), zerr, ~primary, d["objID"].to_numpy()))
    ranked = d.iloc[order]
    first = ~ranked["objID"].duplicated(keep="first").to_numpy()
    keep_idx = np.sort(ranked.index.to_numpy()[first])
    kept = d.loc[keep_idx].reset_index(drop=True)
    drop = ranked.loc[~first]
    chosen = dict(zip(ranked.loc[first, "objID"].to_numpy(), ranked.loc[first, "specObjID"].to_numpy()))
    dropped = pd.DataFrame({
        "specObjID": drop["specObjID"].to_numpy(),
        "reason": [f"repeat spectrum of objID {o}; kept specObjID {chosen[o]} ({SPECTRUM_RULE})"
                   for o in drop["objID"].to_numpy()]})
    return kept, dropped
