"""The suspect zone: found in the residual map, with controls, not given.

Pasquet et al. (2019, Sect. 6.4) found a "suspect zone" where the mean
residual of the test galaxies stood out from the rest of the survey, and ruled
out reddening as its cause because other regions of equally high E(B-V) show
nothing. This module searches the run's own predictions the same way, holding
fixed what the paper ruled out:

* **Controls.** Δz = (z_phot − z_spec)/(1 + z_spec) of every test galaxy is
  fitted on the whole test set by least squares against E(B−V) (the
  catalogue's), the observed r magnitude (``dered_petro_r + extinction_r``:
  what the images show; reddened galaxies are fainter) and a cubic in z_spec
  (the bias curves with redshift, Fig. 8); catastrophic outliers
  (|Δz| > 0.05, ``metrics.OUTLIER_THRESHOLD``) are left out of the fit and
  of the tests, as they would dominate a mean. The search works on the
  residuals of that fit, so a bias that E(B−V), brightness or redshift
  explain everywhere is not a zone.
* **Cells.** HEALPix cells (nested) of ``zone.nside``, the cells of the
  Fig. 12 maps; cells with fewer than ``zone.min_galaxies`` galaxies are not
  tested. Each tested cell gets a two-sample (Welch) statistic of its mean
  residual against all other galaxies.
* **Fields.** Observing conditions (seeing, sky, depth) change from one SDSS
  field to the next, and a network's bias follows them a little: the mean
  residuals of fields scatter by more than their galaxies' noise allows.
  That excess scatter, tau^2 (:func:`field_excess_variance`: the robust
  spread of the fields' mean residuals, less their median sampling
  variance), is added to the variance of every cell's and zone's mean, as
  ``tau^2 * sum_f n_f^2 / n^2`` for its ``n_f`` galaxies in field ``f``
  (:class:`FieldTerm`). A zone must then stand out from the map's ordinary
  field-to-field scatter, not only from its galaxies' noise. A cell or zone
  spread over many fields (SDSS: ~15 targets per field) gets a small share
  of tau^2; on a mock 70 times denser, where one field holds hundreds of test
  galaxies, the term is what keeps single fields from passing as zones
  (benchmarks/zone_rerun.txt).
* **Zones.** A zone is a set of connected cells (HEALPix neighbours, corners
  included) whose statistics pass ``zone.grow_z`` with one sign, at
  least one of them passing ``zone.seed_z``; its statistic Z is the Welch
  statistic of all its galaxies against the rest (with the field term).
* **Threshold.** The largest |Z| of any zone is compared with its
  distribution under the null hypothesis of no zone, drawn by permuting the
  residuals over the galaxies (``zone.n_permutations`` times, seeded by the
  master seed; each permuted map gets its own tau^2, as the statistic is
  computed the same way on every map): a zone is *found* when its |Z| exceeds the (1 − ``zone.alpha``)
  quantile of that maximum, a family-wise level ``alpha`` over every zone the
  map could form. Zones are found one at a time: a found zone's galaxies leave
  the sample (fit, reference and permutations) before the search runs again,
  so a strong zone does not make the rest of the map look deviant.
* **Reported.** For the union of the found zones and for each zone: its
  galaxies' mean Δz (not the residual: the paper's quantity) with its
  standard error, and that of the rest.

Table 2's "suspect zone removed" row removes what this search finds
(``table2_region``): every found zone, or only those touching
``zone.table2_within`` where that region is set (config/sdss-dr12.yaml:
Stripes 38–39, where the paper places its zone). In ``mode: sdss`` the
configured ``regions.suspect_zone`` (this project's estimate of the paper's
zone, not the paper's own coordinates) is a cross-check: ``cross_check``
reports its galaxies, their bias, and its overlap with the found zone.
The search never reads the injection (``mock.suspect_zone*``) or the truth table.

``validate`` (mock runs only) compares the found zones with the injected one
from the truth table (``in_suspect_zone`` per object): overlap of the test
galaxies (recall, precision, Jaccard index), the sign of the bias, and zones
found where nothing was injected. The zone counts as recovered when the
Jaccard index is at least :data:`RECOVERY_JACCARD`, the bias has the injected
galaxies' sign and no other zone is found; otherwise the output says which
condition failed. The injected zone's own size (its galaxies' bias against
the rest's, from the truth's membership) is reported beside it, with the Z
the paper's zone would have at the injected zone's count
(:data:`PAPER_ZONE`: Z scales as the square root of the count).

Commands::

    python -m photoz zone detect --ensemble results/ensemble/main.parquet \\
        --catalog results/shards/catalog.parquet --config-json '{...}' \\
        --out results/zone/zone.json --cells results/zone/cells.csv
    python -m photoz zone validate --zone results/zone/zone.json \\
        --ensemble results/ensemble/main.parquet --catalog results/shards/catalog.parquet \\
        --truth results/mock/truth.parquet --out results/zone/validation.json
"""

from __future__ import annotations

import argparse
import json
import logging
import math

import numpy as np
import pandas as pd

from photoz.io import atomic_path, setup_logging

__all__ = ["RECOVERY_JACCARD", "PAPER_ZONE", "CATALOG_COLUMNS", "cell_of", "control_fit", "field_excess_variance",
           "FieldTerm", "cell_statistics", "zones", "null_max_z", "detect", "table2_region", "region_mask", "cross_check",
           "validate", "main"]

log = logging.getLogger("photoz.zone")

#: Jaccard index of the test galaxies (found vs injected) from which the zone counts as recovered.
RECOVERY_JACCARD = 0.5
#: The paper's zone (Sect. 6.4, Table 2): its test galaxies, its bias and the rest's, and the Z
#: of its bias against the rest (about 9, for a per-galaxy scatter of ~0.015).
PAPER_ZONE = {"n": 1807, "bias": 0.0033, "bias_rest": 0.0001, "z": 9.0}
#: Catalogue columns the controls need (results/shards/catalog.parquet).
CATALOG_COLUMNS = ("ra", "dec", "ebv", "dered_petro_r", "extinction_r", "run", "camcol", "field")
#: Fields with fewer test galaxies than this do not enter the estimate of the field-to-field scatter.
FIELD_MIN_GALAXIES = 5


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


def control_fit(dz, ebv=None, mag=None, z_spec=None, clip=None):
    """Residuals of Δz after the least-squares fit against the controls given, and the fit.

    Δz = a + b E(B−V) + c mag + cubic(z_spec), fitted on the galaxies with
    |Δz| <= ``clip`` (``metrics.OUTLIER_THRESHOLD`` by default); controls
    left as None are not fitted (none at all: the residual is Δz minus its
    mean). Returns ``(resid, used, coef)``: residuals of every galaxy, the
    galaxies kept (finite, not outliers) and the fitted coefficients
    (``ebv`` per magnitude of E(B−V), ``mag`` per magnitude, ``n_fit``).
    """
    from photoz.metrics import OUTLIER_THRESHOLD

    clip = OUTLIER_THRESHOLD if clip is None else clip
    dz = np.asarray(dz, dtype=np.float64)
    cols, names = [np.ones_like(dz)], ["const"]
    for name, v in (("ebv", ebv), ("mag", mag)):
        if v is not None:
            cols.append(np.asarray(v, dtype=np.float64))
            names.append(name)
    if z_spec is not None:
        z = np.asarray(z_spec, dtype=np.float64)
        sd = np.nanstd(z)
        zc = (z - np.nanmean(z)) / (sd if sd > 0 else 1.0)
        cols += [zc, zc ** 2, zc ** 3]
        names += ["z1", "z2", "z3"]
    X = np.column_stack(cols)
    used = np.isfinite(dz) & np.isfinite(X).all(axis=1) & (np.abs(dz) <= clip)
    if used.sum() <= X.shape[1]:
        raise ValueError(f"zone: {int(used.sum())} galaxies with |dz| <= {clip:g} and finite controls, too few "
                         f"for a fit of {X.shape[1]} parameters")
    beta = np.linalg.lstsq(X[used], dz[used], rcond=None)[0]
    resid = dz - X @ beta
    coef = {k: float(b) for k, b in zip(names, beta) if k in ("ebv", "mag")}
    coef["n_fit"] = int(used.sum())
    coef["controls"] = [k for k in names if k in ("ebv", "mag")] + (["z_spec (cubic)"] if z_spec is not None else [])
    return resid, used, coef


def _welch(n, s, s2, n_all, s_all, s2_all, extra=0.0):
    """Welch statistic of groups (counts ``n``, sums ``s``, sums of squares ``s2``) against the rest.

    ``extra``: a variance added to that of each group's mean (the field term, :class:`FieldTerm`).
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = s / n
        var = (s2 - n * mean ** 2) / (n - 1)
        n_r = n_all - n
        mean_r = (s_all - s) / n_r
        var_r = (s2_all - s2 - n_r * mean_r ** 2) / (n_r - 1)
        return (mean - mean_r) / np.sqrt(np.clip(var, 0, None) / n + np.clip(var_r, 0, None) / n_r + extra)


def field_excess_variance(resid, field_idx, n_fields, min_galaxies=FIELD_MIN_GALAXIES):
    """tau^2: how much more the fields' mean residuals scatter than their galaxies' noise allows (>= 0).

    ``(1.4826 MAD of the field means)^2`` minus the median of their sampling variances
    ``s^2 / n``, over the fields with at least ``min_galaxies`` galaxies (robust: a
    zone's few fields barely move it). 0 with fewer than 5 such fields.
    """
    r = np.asarray(resid, dtype=np.float64)
    n = np.bincount(field_idx, minlength=n_fields).astype(float)
    s = np.bincount(field_idx, weights=r, minlength=n_fields)
    s2 = np.bincount(field_idx, weights=r * r, minlength=n_fields)
    ok = n >= max(int(min_galaxies), 2)
    if ok.sum() < 5:
        return 0.0
    m = s[ok] / n[ok]
    v = np.clip(s2[ok] - n[ok] * m ** 2, 0, None) / (n[ok] - 1) / n[ok]
    mad = 1.4826 * np.median(np.abs(m - np.median(m)))
    return float(max(0.0, mad ** 2 - np.median(v)))


class FieldTerm:
    """How the galaxies of each cell spread over SDSS fields, and tau^2 (:func:`field_excess_variance`).

    ``counts``: sparse ``(cells, fields)`` galaxy counts. The variance a group of cells'
    mean gets from field-to-field scatter is ``tau2 * sum_f n_f^2 / (sum_f n_f)^2``.
    """

    def __init__(self, counts, tau2):
        self.counts, self.tau2 = counts, float(tau2)

    def cells(self, n):
        """The extra variance of each cell's mean (``n``: its galaxies)."""
        w = np.asarray(self.counts.multiply(self.counts).sum(axis=1)).ravel()
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.tau2 * w / np.asarray(n, dtype=float) ** 2

    def groups(self, labels, k):
        """The extra variance of the mean of each of the ``k`` groups of cells ``labels`` (-1: none)."""
        from scipy import sparse

        on = np.flatnonzero(labels >= 0)
        g = sparse.csr_matrix((np.ones(len(on)), (labels[on], on)), shape=(k, self.counts.shape[0])) @ self.counts
        n = np.asarray(g.sum(axis=1)).ravel()
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.tau2 * np.asarray(g.multiply(g).sum(axis=1)).ravel() / n ** 2

    def with_tau2(self, tau2):
        return FieldTerm(self.counts, tau2)


def cell_statistics(ra, dec, dz, nside, min_galaxies, resid=None, used=None):
    """One row per cell: cell, n, ra, dec, bias (mean Δz), bias_se, n_used, resid (mean residual), z, tested.

    ``resid``/``used``: residuals after the controls and the galaxies tested
    (:func:`control_fit`); default the Δz themselves, all galaxies. ``z`` is
    the Welch statistic of the cell's residuals against all other tested galaxies.
    """
    dz = np.asarray(dz, dtype=np.float64)
    resid = dz if resid is None else np.asarray(resid, dtype=np.float64)
    used = np.isfinite(resid) if used is None else np.asarray(used, dtype=bool)
    cell = cell_of(ra, dec, nside)
    cells, idx = np.unique(cell, return_inverse=True)
    m = len(cells)
    n = np.bincount(idx, minlength=m).astype(float)
    sdz = np.bincount(idx, weights=dz, minlength=m)
    sdz2 = np.bincount(idx, weights=dz ** 2, minlength=m)
    r = np.where(used, resid, 0.0)
    nu = np.bincount(idx, weights=used.astype(float), minlength=m)
    s = np.bincount(idx, weights=r, minlength=m)
    s2 = np.bincount(idx, weights=r ** 2, minlength=m)
    z = _welch(nu, s, s2, nu.sum(), s.sum(), s2.sum())
    tested = (nu >= int(min_galaxies)) & (nu.sum() - nu >= 2) & np.isfinite(z)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = sdz / n
        se = np.sqrt(np.clip((sdz2 - n * mean ** 2) / (n - 1), 0, None) / n)
        rmean = s / nu
    ra_m = np.bincount(idx, weights=np.asarray(ra, float), minlength=m) / n
    dec_m = np.bincount(idx, weights=np.asarray(dec, float), minlength=m) / n
    return pd.DataFrame({"cell": cells.astype(np.int64), "n": n.astype(np.int64), "ra": ra_m, "dec": dec_m,
                         "bias": mean, "bias_se": se, "n_used": nu.astype(np.int64), "resid": rmean,
                         "z": np.where(tested, z, np.nan), "tested": tested})


def _edges(cells, nside):
    """Pairs (i, j), i < j, of indices into ``cells`` that are HEALPix neighbours (corners included)."""
    from astropy_healpix import HEALPix

    cells = np.asarray(cells, dtype=np.int64)
    if len(cells) < 2:
        return np.zeros((0, 2), dtype=np.int64)
    nb = np.asarray(HEALPix(nside=int(nside), order="nested").neighbours(cells)).T  # (m, 8), -1 where none
    pos = {int(c): k for k, c in enumerate(cells)}
    pairs = {(i, pos[int(c)]) for i in range(len(cells)) for c in nb[i] if c >= 0 and int(c) in pos}
    e = np.array(sorted((min(a, b), max(a, b)) for a, b in pairs if a != b), dtype=np.int64).reshape(-1, 2)
    return np.unique(e, axis=0)


def _components(z, edges, seed_z):
    """Label of each cell's zone (-1: not in one): connected cells with ``|z| > seed_z`` of one sign."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    z = np.asarray(z, dtype=np.float64)
    sign = np.where(np.isfinite(z) & (np.abs(z) > seed_z), np.sign(z), 0)
    labels = np.full(len(z), -1, dtype=np.int64)
    on = np.flatnonzero(sign != 0)
    if not len(on):
        return labels
    if len(edges):
        keep = (sign[edges[:, 0]] != 0) & (sign[edges[:, 0]] == sign[edges[:, 1]])
        e = edges[keep]
    else:
        e = np.zeros((0, 2), dtype=np.int64)
    g = coo_matrix((np.ones(len(e)), (e[:, 0], e[:, 1])), shape=(len(z), len(z)))
    _, lab = connected_components(g, directed=False)
    _, labels[on] = np.unique(lab[on], return_inverse=True)
    return labels


def zones(cell_n, cell_s, cell_s2, tested, edges, seed_z, grow_z=None, fields=None):
    """The zones of one map: (labels per cell, -1 outside; Z per zone) from per-cell counts, sums, sums of squares.

    A zone is a connected set of tested cells whose Welch statistics pass
    ``grow_z`` with one sign and of which at least one passes ``seed_z``
    (hysteresis; ``grow_z`` None: ``seed_z``). Its Z is the Welch statistic of
    all its galaxies against the rest. ``fields``: a :class:`FieldTerm` whose
    variance enters every cell's and zone's statistic (None: none).
    """
    n_all, s_all, s2_all = cell_n.sum(), cell_s.sum(), cell_s2.sum()
    extra = 0.0 if fields is None else fields.cells(cell_n)
    z = np.where(tested, _welch(cell_n, cell_s, cell_s2, n_all, s_all, s2_all, extra), np.nan)
    grow_z = seed_z if grow_z is None else min(grow_z, seed_z)
    labels = _components(z, edges, grow_z)
    seeded = np.unique(labels[(labels >= 0) & (np.abs(np.nan_to_num(z)) > seed_z)])
    labels = np.where(np.isin(labels, seeded), labels, -1)
    _, inv = np.unique(labels, return_inverse=True)
    labels = np.where(labels >= 0, inv - (1 if (labels < 0).any() else 0), -1)
    k = labels.max() + 1
    if k <= 0:
        return labels, np.zeros(0)
    on = labels >= 0
    zn = np.bincount(labels[on], weights=cell_n[on], minlength=k)
    zs = np.bincount(labels[on], weights=cell_s[on], minlength=k)
    zs2 = np.bincount(labels[on], weights=cell_s2[on], minlength=k)
    extra = 0.0 if fields is None else fields.groups(labels, k)
    return labels, _welch(zn, zs, zs2, n_all, s_all, s2_all, extra)


def null_max_z(resid, cell_idx, n_cells, tested, edges, zc, seed=0, fields=None):
    """Largest |Z| of any zone in each of ``zc["n_permutations"]`` maps with the residuals permuted over the galaxies.

    ``fields``: ``(FieldTerm, field index of each galaxy)``; each permuted map's tau^2 is
    estimated from that map, as the observed map's is (None: no field term).
    """
    rng = np.random.default_rng(seed)
    resid = np.asarray(resid, dtype=np.float64)
    n = np.bincount(cell_idx, minlength=n_cells).astype(float)
    out = np.zeros(int(zc["n_permutations"]))
    for p in range(len(out)):
        r = resid[rng.permutation(len(resid))]
        s = np.bincount(cell_idx, weights=r, minlength=n_cells)
        s2 = np.bincount(cell_idx, weights=r * r, minlength=n_cells)
        term = None
        if fields is not None:
            term = fields[0].with_tau2(field_excess_variance(r, fields[1], fields[0].counts.shape[1]))
        _, zz = zones(n, s, s2, tested, edges, zc["seed_z"], zc["grow_z"], term)
        out[p] = np.nanmax(np.abs(zz)) if len(zz) and np.isfinite(zz).any() else 0.0
    return out


def _field_term(cidx, field, used, m_cells, resid):
    """(:class:`FieldTerm` of the tested galaxies, their field index), or None without field ids."""
    if field is None:
        return None
    from scipy import sparse

    fu, fidx = np.unique(np.asarray(field)[used], return_inverse=True)
    counts = sparse.csr_matrix((np.ones(len(fidx)), (cidx[used], fidx)), shape=(m_cells, len(fu)))
    return FieldTerm(counts, field_excess_variance(resid[used], fidx, len(fu))), fidx


def _search(ra, dec, dz, controls, units, zc, seed, keep):
    """One pass on the galaxies ``keep``: control fit, cells, zones, permutation threshold.

    ``units``: (HEALPix cell, field id or None) of every galaxy.
    """
    nside, (cell, field) = zc["nside"], units
    ctrl = [None if c is None else np.asarray(c, dtype=np.float64)[keep] for c in controls]
    resid_k, used_k, coef = control_fit(dz[keep], *ctrl)
    resid = np.full(len(dz), np.nan)
    resid[keep] = resid_k
    used = np.zeros(len(dz), dtype=bool)
    used[keep] = used_k
    cells = cell_statistics(ra[keep], dec[keep], dz[keep], nside, zc["min_galaxies"], resid_k, used_k)
    cidx = np.searchsorted(cells["cell"].to_numpy(), cell[keep])
    m_cells = len(cells)
    tested = cells["tested"].to_numpy()
    edges = _edges(cells["cell"].to_numpy(), nside)
    r_used = np.where(used_k, resid_k, 0.0)
    n_u = cells["n_used"].to_numpy(float)
    s = np.bincount(cidx, weights=r_used, minlength=m_cells)
    s2 = np.bincount(cidx, weights=r_used ** 2, minlength=m_cells)
    ft = _field_term(cidx, None if field is None else np.asarray(field)[keep], used_k, m_cells, resid_k)
    labels, zz = zones(n_u, s, s2, tested, edges, zc["seed_z"], zc["grow_z"], ft and ft[0])
    if ft is not None:  # the cells' statistics as the zones saw them
        cells["z"] = np.where(tested, _welch(n_u, s, s2, n_u.sum(), s.sum(), s2.sum(), ft[0].cells(n_u)), np.nan)
    if tested.any():
        # the permutation moves the tested galaxies' residuals only
        null = null_max_z(resid_k[used_k], cidx[used_k], m_cells, tested, edges, zc, seed, ft)
        k = int(math.ceil((1.0 - zc["alpha"]) * (len(null) + 1))) - 1
        zstar = float(np.sort(null)[min(max(k, 0), len(null) - 1)])
    else:
        null, zstar = np.zeros(0), float("nan")
    return {"resid": resid, "used": used, "coef": coef, "cells": cells, "labels": labels, "z": zz, "null": null,
            "threshold": zstar, "tau": float(np.sqrt(ft[0].tau2)) if ft is not None else None}


def _zone_record(p, j, cell, keep, ra, dec, dz, nside):
    """The found zone ``j`` of search pass ``p``: its cells, Z, p-value, galaxies and biases; and its galaxies."""
    zz = p["z"]
    ids = p["cells"]["cell"].to_numpy()[p["labels"] == j]
    inside = np.isin(cell, ids) & keep
    b_in, se_in = _mean_se(dz[inside])
    b_out, se_out = _mean_se(dz[keep & ~inside])
    return {"cells": [int(c) for c in ids], "z": float(zz[j]), "threshold_z": p["threshold"],
            "p_value": float((1 + np.sum(p["null"] >= abs(zz[j]))) / (1 + len(p["null"]))),
            "n": int(inside.sum()), "bias": b_in, "bias_se": se_in, "bias_rest": b_out,
            "bias_rest_se": se_out, "resid": float(np.nanmean(p["resid"][inside & p["used"]])),
            "bounds": _cell_bounds(ids, nside),
            "ra": float(np.mean(ra[inside])), "dec": float(np.mean(dec[inside]))}, inside


def _max_abs(z):
    return float(np.nanmax(np.abs(z))) if len(z) else 0.0


def _summary(first, last, zlist, cell, dz, zc):
    """The result dict of :func:`detect` (the first pass's threshold and cells, every zone found)."""
    cells = first["cells"]
    found = np.array(sorted(c for zd in zlist for c in zd["cells"]), dtype=np.int64)
    inside = np.isin(cell, found)
    b_in, se_in = _mean_se(dz[inside])
    b_out, se_out = _mean_se(dz[~inside])
    b_all, se_all = _mean_se(dz)
    m = int(cells["tested"].sum())
    return {
        "test": ("least-squares fit of dz against the controls on the whole test set; HEALPix cells of the "
                 "residuals (Welch statistic against the rest, its variance including the field-to-field scatter "
                 "tau^2 weighted by the spread of its galaxies over SDSS fields); zones of connected cells past grow_z of one sign "
                 "with one past seed_z; family-wise threshold from the largest |Z| of any zone in maps with the "
                 "residuals permuted; zones found one at a time, each found zone's galaxies removed before the next"),
        "controls": first["coef"], "field_scatter": first["tau"], "nside": int(zc["nside"]), "alpha": float(zc["alpha"]),
        "min_galaxies": int(zc["min_galaxies"]), "seed_z": float(zc["seed_z"]), "grow_z": float(zc["grow_z"]),
        "n_permutations": int(zc["n_permutations"]),
        "n_galaxies": int(len(dz)), "n_tested_galaxies": int(first["used"].sum()), "n_cells": int(len(cells)),
        "n_cells_tested": m, "n_candidate_zones": int(len(first["z"])), "threshold_z": first["threshold"],
        "max_abs_z": _max_abs(first["z"]), "max_abs_z_left": _max_abs(last["z"]), "threshold_z_left": last["threshold"],
        "max_abs_cell_z": float(np.nanmax(np.abs(cells["z"]))) if m else float("nan"),
        "found": bool(len(zlist)), "n_zones": len(zlist), "zones": zlist,
        "cells": [int(c) for c in found],
        "bounds": _cell_bounds(found, zc["nside"]),
        "n_in": int(inside.sum()), "bias_in": b_in, "bias_in_se": se_in,
        "n_out": int((~inside).sum()), "bias_out": b_out, "bias_out_se": se_out,
        "bias_all": b_all, "bias_all_se": se_all,
    }


def detect(ra, dec, dz, zc, controls=(None, None, None), seed=0, max_zones=10, field=None):
    """Search the residual map for zones; returns (result dict, cell table).

    ``zc`` is the validated ``zone`` config section (``nside, alpha, min_galaxies, seed_z,
    grow_z, n_permutations``). ``controls`` are E(B-V), observed r and z_spec
    (:func:`control_fit`); the workflow always gives all three. Without them
    the search runs on Δz itself (what the tests use to show what controls change).
    ``field``: each galaxy's SDSS field (any hashable id per run, camcol and field);
    with it the field-to-field scatter enters every statistic (:class:`FieldTerm`;
    the workflow always gives it), without it none does.

    Zones are found one at a time: when the strongest candidate passes, its
    galaxies leave the sample (the fit, the "rest" and the permutations) and
    the search runs again on the others, until none passes (at most
    ``max_zones``). A strong zone thus does not make the rest of the map
    look deviant in the other direction. The threshold and the cell table are
    those of the first pass (the whole sample).
    """
    ra, dec = np.asarray(ra, dtype=float), np.asarray(dec, dtype=float)
    dz = np.asarray(dz, dtype=np.float64)
    if len(dz) == 0:
        raise ValueError("zone detect: no test galaxies")
    if not np.isfinite(dz).all():
        raise ValueError(f"zone detect: {int((~np.isfinite(dz)).sum())} non-finite residuals")
    cell = cell_of(ra, dec, zc["nside"])
    keep = np.ones(len(dz), dtype=bool)
    zlist, first = [], None
    for it in range(int(max_zones) + 1):
        p = _search(ra, dec, dz, controls, (cell, field), zc, seed + it, keep)
        first = first or p
        zz = p["z"]
        if not len(zz) or not np.isfinite(p["threshold"]) or np.nanmax(np.abs(zz)) <= p["threshold"] \
                or it == int(max_zones):
            break
        record, inside = _zone_record(p, int(np.nanargmax(np.abs(zz))), cell, keep, ra, dec, dz, zc["nside"])
        zlist.append(record)
        keep = keep & ~inside
    cells = first["cells"]
    cells["zone"] = -1
    for k, zd in enumerate(zlist):
        cells.loc[cells["cell"].isin(zd["cells"]), "zone"] = k
    cells["significant"] = cells["zone"] >= 0
    return _summary(first, p, zlist, cell, dz, zc), cells


def table2_region(result, within=None):
    """The region Table 2's "suspect zone removed" row removes: cells of the zones found.

    With ``within`` (a region, ``photoz.regions``; config ``zone.table2_within``)
    only the found zones with at least one cell centre inside it count
    (config/sdss-dr12.yaml: Stripes 38-39, where the paper places its zone).
    """
    from photoz.regions import in_region

    keep = []
    for zd in result.get("zones", []):
        if within:
            from astropy_healpix import HEALPix

            lon, lat = HEALPix(nside=int(result["nside"]), order="nested").healpix_to_lonlat(
                np.asarray(zd["cells"], dtype=np.int64))
            if not np.any(in_region(lon.to_value("deg"), lat.to_value("deg"), within)):
                continue
        keep += zd["cells"]
    out = {"source": "found", "nside": int(result["nside"]), "cells": sorted(int(c) for c in keep)}
    if within:
        out["within"] = dict(within)
    return out


def region_mask(ra, dec, region):
    """True for positions inside a ``table2_region`` (found cells) or a configured region (``box``)."""
    if region.get("source") == "found":
        return np.isin(cell_of(ra, dec, region["nside"]), np.asarray(region["cells"], dtype=np.int64))
    if region.get("source") == "configured":
        from photoz.regions import in_region

        return in_region(ra, dec, region["box"])
    raise ValueError(f"zone region: unknown source {region.get('source')!r} (allowed: found, configured)")


def cross_check(ra, dec, dz, table2, configured):
    """The configured region (``regions.suspect_zone``) beside the found one: counts, biases, overlap."""
    found = region_mask(ra, dec, table2)
    box = region_mask(ra, dec, {"source": "configured", "box": configured})
    dz = np.asarray(dz, dtype=np.float64)
    b_in, se_in = _mean_se(dz[box])
    b_out, se_out = _mean_se(dz[~box])
    union = int((found | box).sum())
    from photoz.regions import describe_region

    return {"region": {k: v for k, v in configured.items() if v is not None},
            "description": describe_region(configured), "n_in": int(box.sum()), "bias_in": b_in,
            "bias_in_se": se_in, "n_out": int((~box).sum()), "bias_out": b_out, "bias_out_se": se_out,
            "n_both": int((found & box).sum()), "jaccard": (int((found & box).sum()) / union) if union else float("nan")}


def validate(result, ids, ra, dec, dz, truth_ids, truth_in_zone):
    """Compare the found zones with the injected one (mock only); returns a dict with ``recovered`` and ``reason``.

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
    cell = cell_of(ra, dec, result["nside"])
    found = np.isin(cell, np.asarray(result["cells"], dtype=np.int64))
    both = int((found & inj).sum())
    n_f, n_i = int(found.sum()), int(inj.sum())
    union = int((found | inj).sum())
    b_inj, se_inj = _mean_se(dz[inj])
    b_rest, se_rest = _mean_se(dz[~inj])
    z_inj = (b_inj - b_rest) / math.hypot(se_inj, se_rest) if n_i > 1 and np.isfinite(se_rest) else float("nan")
    spurious = [k for k, zd in enumerate(result.get("zones", []))
                if not (np.isin(cell, np.asarray(zd["cells"], dtype=np.int64)) & inj).any()]
    out = {"n_injected": n_i, "n_found": n_f, "n_both": both,
           "recall": both / n_i if n_i else float("nan"), "precision": both / n_f if n_f else float("nan"),
           "jaccard": both / union if union else float("nan"),
           "bias_injected": b_inj, "bias_injected_se": se_inj, "bias_rest": b_rest, "bias_rest_se": se_rest,
           "z_injected": z_inj,
           "bias_ratio": (b_inj / b_rest) if b_rest else float("nan"),
           "z_paper_scaled": PAPER_ZONE["z"] * math.sqrt(n_i / PAPER_ZONE["n"]) if n_i else float("nan"),
           "bias_found": result["bias_in"], "threshold_z": result["threshold_z"],
           "n_zones_found": len(result.get("zones", [])), "n_spurious_zones": len(spurious),
           "recovery_jaccard": RECOVERY_JACCARD}
    same_sign = bool(n_f and n_i and both and np.sign(result["bias_in"]) == np.sign(b_inj))
    out["same_sign"] = same_sign
    if n_i == 0:
        out.update(recovered=False, reason="no_injected_test_galaxies")
    elif n_f == 0:
        out.update(recovered=False, reason="nothing_found")
    elif out["jaccard"] < RECOVERY_JACCARD:
        out.update(recovered=False, reason="low_overlap")
    elif not same_sign:
        out.update(recovered=False, reason="opposite_sign")
    elif spurious:
        out.update(recovered=False, reason="spurious_zone")
    else:
        out.update(recovered=True, reason="recovered")
    return out


def _test_sample(ensemble, catalog, controls=False):
    ens = pd.read_parquet(ensemble, columns=["specObjID", "z_spec", "z_phot"])
    import pyarrow.parquet as pq

    names = pq.read_schema(catalog).names
    want = list(CATALOG_COLUMNS) if controls else ["ra", "dec"]
    missing = [c for c in want if c not in names]
    if missing:
        raise ValueError(f"{catalog}: missing column(s) {', '.join(missing)} (the zone search's "
                         f"{'controls' if controls else 'positions'})")
    cat = pd.read_parquet(catalog, columns=["specObjID", *want])
    df = ens.merge(cat, on="specObjID", how="left", validate="one_to_one")
    bad = df[want].isna().any(axis=1)
    if bad.any():
        raise ValueError(f"{catalog}: {int(bad.sum())} test galaxies of {ensemble} have no "
                         f"{'/'.join(want)}, e.g. specObjID {df.loc[bad, 'specObjID'].head(3).tolist()}")
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


def run_detect(df, cfg):
    """:func:`detect` on a test sample (``_test_sample(..., controls=True)``) with the config's ``zone``,
    ``regions`` and ``mode``; adds ``mode``, ``table2_region`` and (``mode: sdss``) ``cross_check``."""
    zc = cfg["zone"]
    dz = _dz(df)
    controls = (df["ebv"], df["dered_petro_r"] + df["extinction_r"], df["z_spec"])
    field = (df["run"].to_numpy(np.int64) * 10 + df["camcol"].to_numpy(np.int64)) * 10000 + df["field"].to_numpy(np.int64)
    res, cells = detect(df["ra"], df["dec"], dz, zc, controls, int(cfg["seed"]), field=field)
    res["mode"] = cfg["mode"]
    res["table2_region"] = table2_region(res, zc["table2_within"])
    if res["mode"] == "sdss":
        res["cross_check"] = cross_check(df["ra"], df["dec"], dz, res["table2_region"],
                                         cfg["regions"]["suspect_zone"])
    return res, cells


def main(argv=None):
    p = argparse.ArgumentParser(prog="photoz zone", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("detect", help="find the suspect zone in the residual map")
    d.add_argument("--ensemble", required=True)
    d.add_argument("--catalog", required=True, help="results/shards/catalog.parquet (ra, dec and the controls)")
    d.add_argument("--config-json", required=True, help='{"mode": ..., "seed": ..., "zone": {...}, "regions": {...}}')
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
        df = _test_sample(a.ensemble, a.catalog, controls=True)
        res, cells = run_detect(df, cfg)
        log.info("zone: %d of %d cells tested (>= %d galaxies), %d candidate zones, threshold |Z| > %.2f "
                 "(permutations), max |Z| = %.2f; found %d zones (%d galaxies, bias %.5f vs %.5f outside)",
                 res["n_cells_tested"], res["n_cells"], res["min_galaxies"], res["n_candidate_zones"],
                 res["threshold_z"], res["max_abs_z"], res["n_zones"], res["n_in"], res["bias_in"], res["bias_out"])
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
        log.info("zone validation: %s (jaccard %s, injected bias %.5f, Z %.2f; paper's zone at this count: Z %.1f)",
                 out["reason"], out["jaccard"], out["bias_injected"], out["z_injected"], out["z_paper_scaled"])
        _write_json(out, a.out)
    return 0
