"""The suspect zone: found in the residual (bias) map, not given.

Pasquet et al. (2019, Sect. 6.4) found a "suspect zone" where the mean
residual of the test galaxies was far from the rest of the survey. This module
does that search on the run's own predictions:

* **Cells.** HEALPix cells (nested) of ``zone.nside``, the cells of the
  Fig. 12 bias map. Each test galaxy has Δz = (z_phot − z_spec)/(1 + z_spec).
* **Test.** For every cell with at least ``zone.min_galaxies`` test galaxies,
  a two-sample (Welch) statistic compares the cell's mean Δz with the mean of
  all other test galaxies::

      Z_c = (mean_c − mean_rest) / sqrt(s_c² / n_c + s_rest² / n_rest)

* **Threshold.** A cell deviates significantly when ``|Z_c| > Z*`` with
  ``Z* = Φ⁻¹(1 − α / (2 m))``: a two-sided normal test at family-wise level
  ``α = zone.alpha`` over the ``m`` cells tested (Bonferroni).
* **Region.** The union of the deviating cells; its galaxies' mean Δz (with
  its standard error) and that of the rest are reported.

Table 2's "suspect zone removed" row removes the region this analysis found in
``mode: mock``; in ``mode: sdss`` it removes the configured
``regions.suspect_zone`` box, as the paper did (``table2_region`` of the output).
The search never reads the injection (``mock.suspect_zone``) or the truth table.

``validate`` (mock runs only) compares the found region with the injected
one from the truth table (``in_suspect_zone`` per object): overlap of the
test galaxies (recall, precision, Jaccard index) and the sign of the bias.
The zone counts as recovered when the Jaccard index is at least
:data:`RECOVERY_JACCARD` and the found region's bias has the sign of the
injected galaxies' bias; otherwise the output says which condition failed.

Commands::

    python -m photoz zone detect --ensemble results/ensemble/main.parquet \\
        --catalog results/shards/catalog.parquet --config-json '{...}' \\
        --out results/zone/zone.json --cells results/zone/cells.csv
    python -m photoz zone validate --zone results/zone/zone.json \\
        --ensemble results/ensemble/main.parquet --truth results/mock/truth.parquet \\
        --out results/zone/validation.json
"""

from __future__ import annotations

import argparse
import json
import logging
import math

import numpy as np
import pandas as pd

from photoz.io import atomic_path, setup_logging

__all__ = ["DEFAULTS", "RECOVERY_JACCARD", "cell_of", "cell_statistics", "threshold", "detect",
           "table2_region", "region_mask", "validate", "main"]

log = logging.getLogger("photoz.zone")

#: Defaults of the config's ``zone:`` section (the schema repeats them).
DEFAULTS = {"nside": 64, "alpha": 0.01, "min_galaxies": 30}
#: Jaccard index of the test galaxies (found vs injected) from which the zone counts as recovered.
RECOVERY_JACCARD = 0.5


def cell_of(ra, dec, nside):
    """Nested HEALPix cell of each (ra, dec) in degrees."""
    from astropy import units as u
    from astropy_healpix import HEALPix

    hp = HEALPix(nside=int(nside), order="nested")
    return np.asarray(hp.lonlat_to_healpix(np.asarray(ra, dtype=float) * u.deg, np.asarray(dec, dtype=float) * u.deg),
                      dtype=np.int64)


def _cell_bounds(cells, nside):
    """(ra_min, ra_max, dec_min, dec_max) of the cells' corners; RA unwrapped around their median."""
    from astropy_healpix import HEALPix

    if len(cells) == 0:
        return None
    hp = HEALPix(nside=int(nside), order="nested")
    lon, lat = hp.boundaries_lonlat(np.asarray(cells, dtype=np.int64), step=1)
    ra = np.asarray(lon.to_value("deg")).ravel()
    dec = np.asarray(lat.to_value("deg")).ravel()
    ref = float(np.median(ra))
    ra = ref + ((ra - ref + 180.0) % 360.0) - 180.0
    return {"ra_min": float(ra.min()), "ra_max": float(ra.max()), "dec_min": float(dec.min()),
            "dec_max": float(dec.max())}


def _mean_se(x):
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    if n == 0:
        return float("nan"), float("nan")
    return float(x.mean()), (float(x.std(ddof=1) / math.sqrt(n)) if n > 1 else float("nan"))


def threshold(m, alpha):
    """|Z| threshold of a two-sided normal test at family-wise level ``alpha`` over ``m`` tests (Bonferroni)."""
    from scipy.stats import norm

    if m <= 0:
        return float("nan")
    return float(norm.isf(alpha / (2.0 * m)))


def cell_statistics(ra, dec, dz, nside, min_galaxies):
    """One row per cell: cell, n, ra, dec (mean of its galaxies), bias, bias_se, z (Welch vs the rest), tested."""
    dz = np.asarray(dz, dtype=np.float64)
    cell = cell_of(ra, dec, nside)
    df = pd.DataFrame({"cell": cell, "dz": dz, "ra": np.asarray(ra, float), "dec": np.asarray(dec, float)})
    g = df.groupby("cell")
    t = pd.DataFrame({"n": g.size(), "ra": g["ra"].mean(), "dec": g["dec"].mean(), "sum": g["dz"].sum(),
                      "sum2": (df.assign(q=dz**2)).groupby("cell")["q"].sum()}).reset_index()
    n_all, s_all, s2_all = len(dz), float(dz.sum()), float((dz**2).sum())
    n, s, s2 = t["n"].to_numpy(float), t["sum"].to_numpy(), t["sum2"].to_numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = s / n
        var = (s2 - n * mean**2) / (n - 1)
        n_r = n_all - n
        mean_r = (s_all - s) / n_r
        var_r = (s2_all - s2 - n_r * mean_r**2) / (n_r - 1)
        se = np.sqrt(np.clip(var, 0, None) / n)
        z = (mean - mean_r) / np.sqrt(np.clip(var, 0, None) / n + np.clip(var_r, 0, None) / n_r)
    tested = (n >= int(min_galaxies)) & (n_r >= 2) & np.isfinite(z)
    out = pd.DataFrame({"cell": t["cell"].astype(np.int64), "n": t["n"].astype(np.int64), "ra": t["ra"],
                        "dec": t["dec"], "bias": mean, "bias_se": se, "z": np.where(tested, z, np.nan),
                        "tested": tested})
    return out.sort_values("cell").reset_index(drop=True)


def detect(ra, dec, dz, nside=DEFAULTS["nside"], alpha=DEFAULTS["alpha"], min_galaxies=DEFAULTS["min_galaxies"]):
    """Search the bias map for cells that deviate significantly; returns (result dict, cell table)."""
    dz = np.asarray(dz, dtype=np.float64)
    if len(dz) == 0:
        raise ValueError("zone detect: no test galaxies")
    if not np.isfinite(dz).all():
        raise ValueError(f"zone detect: {int((~np.isfinite(dz)).sum())} non-finite residuals")
    cells = cell_statistics(ra, dec, dz, nside, min_galaxies)
    m = int(cells["tested"].sum())
    zstar = threshold(m, alpha)
    cells["significant"] = cells["tested"] & (np.abs(cells["z"]) > zstar)
    found = cells.loc[cells["significant"], "cell"].to_numpy(dtype=np.int64)
    inside = np.isin(cell_of(ra, dec, nside), found)
    b_in, se_in = _mean_se(dz[inside])
    b_out, se_out = _mean_se(dz[~inside])
    b_all, se_all = _mean_se(dz)
    res = {
        "test": ("two-sided Welch test of each HEALPix cell's mean residual against all other test galaxies; "
                 "Bonferroni over the cells tested"),
        "nside": int(nside), "alpha": float(alpha), "min_galaxies": int(min_galaxies),
        "n_galaxies": int(len(dz)), "n_cells": int(len(cells)), "n_cells_tested": m, "threshold_z": zstar,
        "max_abs_z": float(np.nanmax(np.abs(cells["z"]))) if m else float("nan"),
        "found": bool(len(found)),
        "cells": [int(c) for c in found],
        "cell_z": [float(z) for z in cells.loc[cells["significant"], "z"]],
        "bounds": _cell_bounds(found, nside),
        "n_in": int(inside.sum()), "bias_in": b_in, "bias_in_se": se_in,
        "n_out": int((~inside).sum()), "bias_out": b_out, "bias_out_se": se_out,
        "bias_all": b_all, "bias_all_se": se_all,
    }
    return res, cells


def table2_region(mode, result, configured_box):
    """The region Table 2's "suspect zone removed" row removes.

    ``mode: mock``: the cells this analysis found (possibly none);
    otherwise the configured box (``regions.suspect_zone``), as the paper did.
    """
    if mode == "mock":
        return {"source": "found", "nside": int(result["nside"]), "cells": list(result["cells"])}
    return {"source": "configured", "box": dict(configured_box)}


def region_mask(ra, dec, region):
    """True for positions inside a ``table2_region`` (found cells or configured box)."""
    if region.get("source") == "found":
        return np.isin(cell_of(ra, dec, region["nside"]), np.asarray(region["cells"], dtype=np.int64))
    if region.get("source") == "configured":
        from photoz.tables import in_box

        return in_box(ra, dec, region["box"])
    raise ValueError(f"zone region: unknown source {region.get('source')!r} (allowed: found, configured)")


def validate(result, ids, ra, dec, dz, truth_ids, truth_in_zone):
    """Compare the found region with the injected one (mock only); returns a dict with ``recovered`` and ``reason``.

    ``ids, ra, dec, dz``: the test galaxies; ``truth_ids``, ``truth_in_zone``:
    specObjID and ``in_suspect_zone`` of the truth table.
    """
    t = pd.Series(np.asarray(truth_in_zone, dtype=bool), index=pd.Index(np.asarray(truth_ids)))
    if not t.index.is_unique:
        raise ValueError("zone validate: truth table has duplicated specObjID")
    inj = t.reindex(np.asarray(ids))
    if inj.isna().any():
        raise ValueError(f"zone validate: {int(inj.isna().sum())} test galaxies are not in the truth table, "
                         f"e.g. specObjID {np.asarray(ids)[inj.isna().to_numpy()][:3].tolist()}")
    inj = inj.to_numpy(dtype=bool)
    dz = np.asarray(dz, dtype=np.float64)
    found = np.isin(cell_of(ra, dec, result["nside"]), np.asarray(result["cells"], dtype=np.int64))
    both = int((found & inj).sum())
    n_f, n_i = int(found.sum()), int(inj.sum())
    union = int((found | inj).sum())
    b_inj, se_inj = _mean_se(dz[inj])
    b_rest, se_rest = _mean_se(dz[~inj])
    z_inj = (b_inj - b_rest) / math.hypot(se_inj, se_rest) if n_i > 1 and np.isfinite(se_rest) else float("nan")
    out = {"n_injected": n_i, "n_found": n_f, "n_both": both,
           "recall": both / n_i if n_i else float("nan"), "precision": both / n_f if n_f else float("nan"),
           "jaccard": both / union if union else float("nan"),
           "bias_injected": b_inj, "bias_injected_se": se_inj, "z_injected": z_inj,
           "bias_found": result["bias_in"], "threshold_z": result["threshold_z"],
           "recovery_jaccard": RECOVERY_JACCARD}
    same_sign = bool(n_f and n_i and np.sign(result["bias_in"]) == np.sign(b_inj))
    out["same_sign"] = same_sign
    if n_i == 0:
        out.update(recovered=False, reason="no_injected_test_galaxies")
    elif n_f == 0:
        out.update(recovered=False, reason="nothing_found")
    elif out["jaccard"] < RECOVERY_JACCARD:
        out.update(recovered=False, reason="low_overlap")
    elif not same_sign:
        out.update(recovered=False, reason="opposite_sign")
    else:
        out.update(recovered=True, reason="recovered")
    return out


def _test_sample(ensemble, catalog):
    ens = pd.read_parquet(ensemble, columns=["specObjID", "z_spec", "z_phot"])
    if catalog is None:
        return ens
    cat = pd.read_parquet(catalog, columns=["specObjID", "ra", "dec"])
    df = ens.merge(cat, on="specObjID", how="left", validate="one_to_one")
    bad = df["ra"].isna() | df["dec"].isna()
    if bad.any():
        raise ValueError(f"{catalog}: {int(bad.sum())} test galaxies of {ensemble} have no position, "
                         f"e.g. specObjID {df.loc[bad, 'specObjID'].head(3).tolist()}")
    return df


def _dz(df):
    from photoz.metrics import delta_z

    return delta_z(df["z_phot"].to_numpy(float), df["z_spec"].to_numpy(float))


def _write_json(obj, path):
    def clean(v):
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, list):
            return [clean(x) for x in v]
        return v

    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(clean(obj), indent=1) + "\n")


def main(argv=None):
    p = argparse.ArgumentParser(prog="photoz zone", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("detect", help="find the suspect zone in the bias map")
    d.add_argument("--ensemble", required=True)
    d.add_argument("--catalog", required=True, help="results/shards/catalog.parquet (ra, dec)")
    d.add_argument("--config-json", required=True, help='{"mode": ..., "zone": {...}, "regions": {...}}')
    d.add_argument("--out", required=True)
    d.add_argument("--cells", required=True, help="CSV of every cell's statistics")
    v = sub.add_parser("validate", help="found vs injected zone (mock only)")
    v.add_argument("--zone", required=True)
    v.add_argument("--ensemble", required=True)
    v.add_argument("--catalog", required=True)
    v.add_argument("--truth", required=True, help="results/mock/truth.parquet")
    v.add_argument("--out", required=True)
    for s in (d, v):
        s.add_argument("--log", default=None)
    a = p.parse_args(argv)
    setup_logging(a.log, name="photoz")
    if a.cmd == "detect":
        cfg = json.loads(a.config_json)
        zc = {**DEFAULTS, **(cfg.get("zone") or {})}
        df = _test_sample(a.ensemble, a.catalog)
        res, cells = detect(df["ra"], df["dec"], _dz(df), zc["nside"], zc["alpha"], zc["min_galaxies"])
        res["mode"] = cfg.get("mode", "mock")
        res["table2_region"] = table2_region(res["mode"], res, cfg["regions"]["suspect_zone"])
        log.info("zone: %d of %d cells tested (>= %d galaxies), threshold |Z| > %.2f, max |Z| = %.2f; found %d cells "
                 "(%d galaxies, bias %.5f +- %.5f vs %.5f outside)", res["n_cells_tested"], res["n_cells"],
                 res["min_galaxies"], res["threshold_z"], res["max_abs_z"], len(res["cells"]), res["n_in"],
                 res["bias_in"], res["bias_in_se"] if np.isfinite(res["bias_in_se"]) else float("nan"), res["bias_out"])
        _write_json(res, a.out)
        with atomic_path(a.cells) as tmp:
            cells.to_csv(tmp, index=False)
    else:
        res = json.loads(open(a.zone).read())
        df = _test_sample(a.ensemble, a.catalog)
        try:
            truth = pd.read_parquet(a.truth, columns=["specObjID", "in_suspect_zone"])
        except Exception as err:
            raise SystemExit(f"zone validate: cannot read {a.truth}: {err}")
        out = validate(res, df["specObjID"].to_numpy(), df["ra"], df["dec"], _dz(df),
                       truth["specObjID"].to_numpy(), truth["in_suspect_zone"].to_numpy())
        log.info("zone validation: %s (jaccard %.2f, recall %.2f, injected bias %.5f, Z %.2f)", out["reason"],
                 out["jaccard"], out["recall"], out["bias_injected"], out["z_injected"])
        _write_json(out, a.out)
    return 0
