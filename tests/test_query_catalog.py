"""Catalog schema validation (photoz.catalog)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from photoz.catalog import SCHEMA, CatalogError, validate_catalog


def good_catalog(n=20):
    rng = np.random.default_rng(0)
    d = {}
    for name, col in SCHEMA.items():
        if col.dtype.startswith("int"):
            d[name] = np.arange(1, n + 1) + (10**17 if name == "specObjID" else 0)
        else:
            lo = 0.0 if col.lo is None else col.lo
            hi = lo + 1.0 if col.hi is None else min(col.hi, lo + 1.0)
            d[name] = rng.uniform(lo, hi, n)
    d["camcol"] = np.full(n, 3)
    d["rerun"] = np.full(n, 301)
    return pd.DataFrame(d)


def test_good_catalog_passes_and_is_typed():
    good, rejected = validate_catalog(good_catalog())
    assert len(good) == 20 and len(rejected) == 0
    assert list(good.columns) == list(SCHEMA)
    for name, col in SCHEMA.items():
        assert good[name].dtype == np.dtype(col.dtype), name


def test_duplicate_ids_are_an_error():
    df = good_catalog()
    df.loc[5, "specObjID"] = df.loc[4, "specObjID"]
    with pytest.raises(CatalogError, match="share a specObjID"):
        validate_catalog(df, source="x.parquet")


def test_missing_and_unknown_columns_are_named():
    df = good_catalog().drop(columns=["ebv"]).assign(extra=1)
    with pytest.raises(CatalogError, match=r"missing \['ebv'\], unknown \['extra'\]"):
        validate_catalog(df)


def test_nan_or_out_of_range_required_values_are_rejected_with_reason():
    df = good_catalog(200)
    df.loc[3, "dered_petro_r"] = np.nan
    df.loc[7, "dec"] = 95.0
    good, rejected = validate_catalog(df)
    assert len(good) == 198
    reasons = dict(zip(rejected["specObjID"], rejected["reason"]))
    assert reasons[df.loc[3, "specObjID"]] == "dered_petro_r missing"
    assert reasons[df.loc[7, "specObjID"]] == "dec out of range"


def test_too_many_rejected_rows_fail_the_catalog():
    df = good_catalog(20)
    df.loc[:3, "z"] = np.nan
    with pytest.raises(CatalogError, match="4 of 20 rows fail"):
        validate_catalog(df)


def test_sentinels_in_optional_columns_become_nan_and_text_is_an_error():
    df = good_catalog()
    df.loc[2, "expAB_r"] = -9999.0
    df.loc[4, "zphot"] = 9.0  # outside the optional range: unusable, set to NaN
    good, rejected = validate_catalog(df)
    assert len(rejected) == 0
    assert np.isnan(good.loc[2, "expAB_r"]) and np.isnan(good.loc[4, "zphot"])
    df = good_catalog().astype({"ra": object})
    df.loc[1, "ra"] = "abc"
    with pytest.raises(CatalogError, match="column ra row 1 holds 'abc'"):
        validate_catalog(df)


def test_one_spectrum_per_galaxy_rule():
    from photoz.catalog import one_spectrum_per_galaxy

    df = pd.DataFrame({
        "specObjID": [10, 11, 12, 13, 14, 15, 16],
        "objID":     [1, 1, 2, 2, 2, 3, 4],
        "zErr":      [1e-4, 5e-5, 3e-4, 1e-4, 1e-4, 1e-4, -9999.0],
        "sciencePrimary": [1, 0, 0, 0, 0, 1, 0]})
    kept, dropped = one_spectrum_per_galaxy(df)
    # 1: the primary beats a smaller zErr; 2: none primary -> smallest zErr, then smallest specObjID
    assert kept["specObjID"].tolist() == [10, 13, 15, 16]
    assert sorted(dropped["specObjID"]) == [11, 12, 14]
    assert dropped.set_index("specObjID").loc[14, "reason"].startswith("repeat spectrum of objID 2; kept specObjID 13")
    with pytest.raises(CatalogError, match="sciencePrimary"):
        one_spectrum_per_galaxy(df.drop(columns="sciencePrimary"))
