"""The mock's Photoz table: a fair B16-like estimator, and the catalogue's noisy E(B-V)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from photoz.knn import fit_predict
from photoz.config import fill_section
from photoz.metrics import sigma_mad
from photoz.mock import geometry as geo
from photoz.mock.merge import B16_CLIP_SIGMA, b16_like, catalog_noise, training_sample
from photoz.mock.population import R_LIMIT, sample_galaxies
from photoz.mock.reddening import EXTINCTION_COEFF, sfd_estimate

MOCK = fill_section("mock", {})  # the schema's defaults
K, SFD_SCATTER = MOCK["photoz_k"], MOCK["ebv_sfd_scatter"]

BANDS = geo.BANDS


def _feats(m):
    return np.column_stack([m[:, 2], m[:, 0] - m[:, 1], m[:, 1] - m[:, 2], m[:, 2] - m[:, 3], m[:, 3] - m[:, 4]])


def synthetic_catalog(n=6000, seed=3, r_true_max=R_LIMIT):
    """A catalogue with a known noise model: photometric noise growing with magnitude,
    an aperture loss shared by the bands, and SFD-like reddening errors. With
    ``r_true_max`` beyond R_LIMIT, targets are selected on the measured magnitude,
    as the mock (and SDSS) select them."""
    rng = np.random.default_rng(seed)
    gal = sample_galaxies(rng, 3 * n)
    r = 22.5 - 2.5 * np.log10(gal["flux_bulge_r"] + gal["flux_disk_r"])
    gal = gal[r <= r_true_max].iloc[:n].reset_index(drop=True)
    m = len(gal)
    ebv = rng.uniform(0.01, 0.12, m)
    ebv_sfd = sfd_estimate(ebv, rng, SFD_SCATTER)
    # aperture loss, and a tail of galaxies measured too bright (blended neighbours)
    aperture = rng.normal(0.08, 0.04, m) - np.where(rng.random(m) < 0.1, rng.exponential(0.3, m), 0.0)
    cat = pd.DataFrame({"class": "GALAXY", "z": gal["z"]})
    for j, b in enumerate(BANDS):
        flux = gal[f"flux_bulge_{b}"] + gal[f"flux_disk_{b}"]
        true = 22.5 - 2.5 * np.log10(flux)
        err = np.array([0.06, 0.008, 0.006, 0.007, 0.02])[j] * 10 ** (0.3 * (true - 17.0))
        cat[f"flux_true_{b}"] = flux
        cat[f"petroMag_{b}"] = true + EXTINCTION_COEFF[j] * ebv + aperture + err * rng.standard_normal(m)
        cat[f"petroMagErr_{b}"] = err
        cat[f"extinction_{b}"] = EXTINCTION_COEFF[j] * ebv_sfd
    if r_true_max > R_LIMIT:
        cat = cat[cat["petroMag_r"] - cat["extinction_r"] <= R_LIMIT].reset_index(drop=True)
    return cat


def _dered(cat):
    return np.column_stack([cat[f"petroMag_{b}"] - cat[f"extinction_{b}"] for b in BANDS])


def _sigma(zp, zs):
    return sigma_mad((zp - zs) / (1 + zs))


def _boot_err(zp, zs, n=200, seed=0):
    rng = np.random.default_rng(seed)
    i = rng.integers(0, len(zs), (n, len(zs)))
    return np.std([_sigma(zp[k], zs[k]) for k in i])


@pytest.fixture(scope="module")
def setup():
    cat = synthetic_catalog()
    mock = {"seed": 11, "photoz_training_size": 4000}
    tm, tz = training_sample(mock, cat)
    return cat, tm, tz


def test_training_sample_carries_the_catalogues_noise(setup):
    """Deeper and wider in z than the catalogue, and its colours as noisy as the
    catalogue's: the g-r and r-i errors scatter alike (within 20%), not 7 times more."""
    cat, tm, tz = setup
    _, tz2, true = training_sample({"seed": 11, "photoz_training_size": 4000}, cat, return_true=True)
    assert np.array_equal(tz, tz2) and len(tz) == 4000
    assert tz.max() > cat["z"].max() + 0.1 and true[:, 2].max() > R_LIMIT + 1.5
    _, resid, _ = catalog_noise(cat)
    bright = true[:, 2] <= R_LIMIT
    err_t = tm - true
    for a, b in ((1, 2), (2, 3)):
        s_cat = sigma_mad(resid[:, a] - resid[:, b])
        s_tr = sigma_mad(err_t[bright, a] - err_t[bright, b])
        assert abs(s_tr / s_cat - 1) < 0.2, (a, b, s_tr, s_cat)
    # beyond the catalogue's faint end the noise grows, as the catalogue's errors predict
    faint = true[:, 2] > R_LIMIT + 1.0
    assert sigma_mad(err_t[faint, 1] - err_t[faint, 2]) > 1.3 * sigma_mad(err_t[bright, 1] - err_t[bright, 2])


def test_b16_like_and_knn_agree_when_trained_on_equivalent_samples(setup):
    """Same method, same noise: the B16-like estimator trained on the separate mock
    spectroscopic sample and the project's kNN trained on half of the catalogue give
    sigma_MAD equal within their bootstrap errors on the other half."""
    cat, tm, tz = setup
    x = _dered(cat)
    zs = cat["z"].to_numpy()
    half = np.arange(len(cat)) % 2 == 0
    zb, _, nn = b16_like(tm, tz, x[~half], K)
    zk, _, _ = fit_predict(_feats(x[half]), zs[half], _feats(x[~half]), k=100, clip_sigma=B16_CLIP_SIGMA)
    assert (nn == 100).all()
    # same method: on the same training sample the two give the same redshifts
    zs_same, _, _ = fit_predict(_feats(tm), tz, _feats(x[~half]), k=100, clip_sigma=B16_CLIP_SIGMA)
    np.testing.assert_allclose(zb, zs_same)
    sb, sk = _sigma(zb, zs[~half]), _sigma(zk, zs[~half])
    eb, ek = _boot_err(zb, zs[~half]), _boot_err(zk, zs[~half])
    print(f'sigma_mad B16-like {sb:.5f}+-{eb:.5f}, kNN {sk:.5f}+-{ek:.5f}')
    assert abs(sb - sk) < 2.5 * np.hypot(eb, ek), (sb, eb, sk, ek)
    # the test has power: training photometry 0.1 mag noisier per band (the old handicap
    # was larger) is detected as a worse estimator
    rng = np.random.default_rng(5)
    zh, _, _ = b16_like(tm + rng.normal(0, 0.1, tm.shape), tz, x[~half], K)
    sh = _sigma(zh, zs[~half])
    print(f'handicapped {sh:.5f}')
    assert sh - sk > 2.5 * np.hypot(_boot_err(zh, zs[~half]), ek), (sh, sk)


def test_b16_like_marks_objects_without_photometry():
    rng = np.random.default_rng(0)
    tm = 17 + rng.normal(0, 1, (300, 5))
    tz = rng.uniform(0, 0.3, 300)
    q = tm[:5].copy()
    q[2, 3] = np.nan
    z, ze, nn = b16_like(tm, tz, q, k=50)
    assert z[2] == -9999 and ze[2] == -9999 and nn[2] == 0
    assert np.all(nn[[0, 1, 3, 4]] == 50) and np.all(z[[0, 1, 3, 4]] > -1)


def test_catalogue_ebv_scatters_around_the_truth():
    rng = np.random.default_rng(1)
    truth = rng.uniform(0.01, 0.2, 20000)
    est = sfd_estimate(truth, rng, SFD_SCATTER)
    ratio = est / truth
    assert abs(np.mean(ratio) - 1) < 0.01  # unbiased on average
    assert abs(np.std(np.log(ratio)) - SFD_SCATTER) < 0.01  # SFD's 16%
    assert np.array_equal(sfd_estimate(truth, rng, 0.0), truth)
    with pytest.raises(ValueError, match="ebv_sfd_scatter"):
        sfd_estimate(truth, rng, -0.1)


def test_b16_like_is_unbiased_when_targets_are_selected_on_measured_magnitudes():
    """Near the limit, targeting by measured magnitude keeps galaxies measured too bright;
    borrowing their errors would bias the training photometry (and the redshifts). The
    B16-like bias stays that of the kNN trained on the catalogue itself."""
    cat = synthetic_catalog(n=8000, seed=4, r_true_max=18.3)
    tm, tz = training_sample({"seed": 12, "photoz_training_size": 4000}, cat)
    x = _dered(cat)
    zs = cat["z"].to_numpy()
    half = np.arange(len(cat)) % 2 == 0
    zb, _, _ = b16_like(tm, tz, x[~half], K)
    zk, _, _ = fit_predict(_feats(x[half]), zs[half], _feats(x[~half]), k=100, clip_sigma=B16_CLIP_SIGMA)
    db, dk = (zb - zs[~half]) / (1 + zs[~half]), (zk - zs[~half]) / (1 + zs[~half])
    err = np.hypot(db.std(), dk.std()) / np.sqrt(len(db))
    print(f"bias B16-like {db.mean():.5f}, kNN {dk.mean():.5f} +- {err:.5f}")
    assert abs(db.mean() - dk.mean()) < 3 * err + 5e-4
