"""Suspect-zone detection from the bias map, Table 2's region, and the mock-only validation."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from photoz import zone


def _sky(n=20000, seed=0, shift=0.0, box=(150.2, 150.9, 29.6, 30.2)):
    """Galaxies on a 2x1.5 deg patch with heavy-tailed residuals; ``shift`` added inside ``box``."""
    rng = np.random.default_rng(seed)
    ra = rng.uniform(149.5, 151.5, n)
    dec = rng.uniform(29.0, 30.5, n)
    dz = 0.015 * rng.standard_t(4, n)
    inj = (ra > box[0]) & (ra < box[1]) & (dec > box[2]) & (dec < box[3])
    return ra, dec, dz + shift * inj, inj


def test_threshold_is_bonferroni():
    from scipy.stats import norm

    assert zone.threshold(1, 0.05) == pytest.approx(1.95996, abs=1e-4)
    assert zone.threshold(100, 0.01) == pytest.approx(norm.isf(0.01 / 200))


def test_finds_an_injected_bias_and_nothing_without_it():
    ra, dec, dz, inj = _sky(shift=0.008)
    res, cells = zone.detect(ra, dec, dz, nside=256, alpha=0.01, min_galaxies=30)
    assert res["found"] and res["n_cells_tested"] > 20
    assert res["bias_in"] > 0.003 and abs(res["bias_out"]) < 0.001
    found = zone.region_mask(ra, dec, zone.table2_region("mock", res, None))
    assert (found & inj).sum() / (found | inj).sum() > 0.6
    b = res["bounds"]
    assert 149.9 < b["ra_min"] < b["ra_max"] < 151.2 and 29.3 < b["dec_min"] < b["dec_max"] < 30.5
    # the same sky without the shift: nothing passes the threshold
    ra, dec, dz, _ = _sky(shift=0.0)
    res0, _ = zone.detect(ra, dec, dz, nside=256, alpha=0.01, min_galaxies=30)
    assert not res0["found"] and res0["cells"] == [] and res0["max_abs_z"] < res0["threshold_z"]
    assert not zone.region_mask(ra, dec, zone.table2_region("mock", res0, None)).any()


def test_small_cells_are_not_tested():
    ra, dec, dz, _ = _sky(n=500)
    res, cells = zone.detect(ra, dec, dz, nside=256, alpha=0.01, min_galaxies=30)
    assert res["n_cells_tested"] == 0 and not res["found"] and cells["z"].isna().all()


def test_table2_region_real_mode_uses_configured_box():
    box = {"ra_min": 150.0, "ra_max": 150.5, "dec_min": 29.0, "dec_max": 30.0}
    reg = zone.table2_region("sdss", {"nside": 64, "cells": [1, 2]}, box)
    assert reg == {"source": "configured", "box": box}
    m = zone.region_mask(np.array([150.2, 151.0]), np.array([29.5, 29.5]), reg)
    assert m.tolist() == [True, False]
    with pytest.raises(ValueError, match="unknown source"):
        zone.region_mask([0.0], [0.0], {"source": "x"})


def test_validation_says_recovered_or_why_not():
    ra, dec, dz, inj = _sky(shift=0.008)
    ids = np.arange(len(ra)) + 10
    res, _ = zone.detect(ra, dec, dz, nside=256)
    v = zone.validate(res, ids, ra, dec, dz, ids, inj)
    assert v["recovered"] and v["reason"] == "recovered" and v["same_sign"] and v["z_injected"] > 5
    # a fault too weak to be seen: the validation says nothing was found, and the injected bias
    ra, dec, dz, inj = _sky(shift=0.0005)
    res, _ = zone.detect(ra, dec, dz, nside=256)
    v = zone.validate(res, ids, ra, dec, dz, ids, inj)
    assert not v["recovered"] and v["reason"] == "nothing_found" and abs(v["z_injected"]) < res["threshold_z"]
    # found somewhere else
    ra, dec, dz, inj = _sky(shift=0.008)
    res, _ = zone.detect(ra, dec, dz, nside=256)
    elsewhere = (ra > 151.0) & (dec < 29.4)
    v = zone.validate(res, ids, ra, dec, dz, ids, elsewhere)
    assert not v["recovered"] and v["reason"] == "low_overlap"
    with pytest.raises(ValueError, match="not in the truth table"):
        zone.validate(res, ids, ra, dec, dz, ids[:-1], inj[:-1])


def test_cli_detect_and_validate(tmp_path):
    ra, dec, dz, inj = _sky(n=20000, shift=0.008)
    ids = np.arange(len(ra)) + 1
    zs = np.full(len(ra), 0.1)
    pd.DataFrame({"specObjID": ids, "z_spec": zs, "z_phot": zs + dz * (1 + zs)}).to_parquet(tmp_path / "e.parquet")
    pd.DataFrame({"specObjID": ids, "ra": ra, "dec": dec}).to_parquet(tmp_path / "c.parquet")
    pd.DataFrame({"specObjID": ids, "in_suspect_zone": inj}).to_parquet(tmp_path / "t.parquet")
    cfg = {"mode": "mock", "zone": {"nside": 256, "alpha": 0.01, "min_galaxies": 30},
           "regions": {"suspect_zone": {"ra_min": 0, "ra_max": 1, "dec_min": 0, "dec_max": 1}}}
    assert zone.main(["detect", "--ensemble", str(tmp_path / "e.parquet"), "--catalog", str(tmp_path / "c.parquet"),
                      "--config-json", json.dumps(cfg), "--out", str(tmp_path / "z.json"),
                      "--cells", str(tmp_path / "cells.csv")]) == 0
    z = json.loads((tmp_path / "z.json").read_text())
    assert z["found"] and z["table2_region"]["source"] == "found" and z["table2_region"]["cells"] == z["cells"]
    assert len(pd.read_csv(tmp_path / "cells.csv")) == z["n_cells"]
    assert zone.main(["validate", "--zone", str(tmp_path / "z.json"), "--ensemble", str(tmp_path / "e.parquet"),
                      "--catalog", str(tmp_path / "c.parquet"), "--truth", str(tmp_path / "t.parquet"),
                      "--out", str(tmp_path / "v.json")]) == 0
    v = json.loads((tmp_path / "v.json").read_text())
    assert v["recovered"] is True and v["reason"] == "recovered" and v["jaccard"] >= zone.RECOVERY_JACCARD


def test_table2_suspect_row_removes_the_found_region():
    from photoz.tables import subset_mask

    ra, dec, dz, inj = _sky(shift=0.008)
    res, _ = zone.detect(ra, dec, dz, nside=256)
    cat = pd.DataFrame({"ra": ra, "dec": dec})
    far = {"ra_min": 0.0, "ra_max": 1.0, "dec_min": 0.0, "dec_max": 1.0}
    regions = {"suspect_zone": far, "suspect_region": zone.table2_region("mock", res, far)}
    keep = subset_mask("no_suspect", cat, regions)
    assert (~keep).sum() == res["n_in"] > 0
    # real mode: the configured box, whatever was found
    regions["suspect_region"] = zone.table2_region("sdss", res, far)
    assert subset_mask("no_suspect", cat, regions).all()
