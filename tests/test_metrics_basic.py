"""photoz.metrics against cases with known answers."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import chi2, norm

from photoz import bins, metrics


def gaussian_pdfs(mu, sigma, edges):
    """Bin probabilities of Gaussians N(mu_i, sigma_i) on the grid."""
    c = norm.cdf((edges[None, :] - np.asarray(mu)[:, None]) / np.asarray(sigma)[:, None])
    return np.diff(c, axis=1)


def crps_gaussian(mu, sigma, y):
    """Closed form (Gneiting & Raftery 2007) for a Gaussian forecast."""
    x = (y - mu) / sigma
    return sigma * (x * (2 * norm.cdf(x) - 1) + 2 * norm.pdf(x) - 1 / np.sqrt(np.pi))


def test_delta_z_bias_eta_known_values():
    dz = metrics.delta_z([0.11, 0.2, 0.3], [0.1, 0.2, 0.25])
    np.testing.assert_allclose(dz, [0.01 / 1.1, 0.0, 0.05 / 1.25])
    assert metrics.bias([0.1, -0.3, 0.5]) == pytest.approx(0.1)
    # strict inequality |dz| > 0.05
    assert metrics.eta([0.05, 0.0501, -0.06, 0.0]) == pytest.approx(50.0)
    with pytest.raises(ValueError, match="shape"):
        metrics.delta_z([0.1, 0.2], [0.1])


def test_sigma_mad_subtracts_the_median():
    # median 2, |dz - 2| = [2, 1, 0, 1, 98] -> median 1
    assert metrics.sigma_mad([0, 1, 2, 3, 100]) == pytest.approx(1.4826)
    # a constant offset does not change it (Ilbert et al.'s variant would)
    assert metrics.sigma_mad(np.array([0, 1, 2, 3, 100]) + 7.0) == pytest.approx(1.4826)


def test_sigma_mad_of_gaussian_is_sigma():
    dz = np.random.default_rng(1).normal(0.001, 0.01, 400_000)
    assert metrics.sigma_mad(dz) == pytest.approx(0.01, rel=0.01)
    m = metrics.point_metrics(dz + 0.0, np.zeros_like(dz))
    assert m["n"] == dz.size and m["bias"] == pytest.approx(0.001, abs=1e-4)
    wide = np.random.default_rng(2).normal(0.001, 0.025, 400_000)
    expected = 100 * (norm.sf(0.049 / 0.025) + norm.sf(0.051 / 0.025))
    assert metrics.eta(wide) == pytest.approx(expected, rel=0.02)


def test_bootstrap_error_of_bias_is_standard_error():
    rng = np.random.default_rng(2)
    zs = rng.uniform(0.05, 0.3, 5000)
    zp = zs + rng.normal(0, 0.02, zs.size) * (1 + zs)
    e = metrics.bootstrap(zp, zs, n_resamples=300, seed=3)
    assert e["bias_err"] == pytest.approx(0.02 / np.sqrt(zs.size), rel=0.15)
    # sigma_MAD of a Gaussian: se ~ 1.166 sigma / sqrt(n)
    assert e["sigma_mad_err"] == pytest.approx(1.166 * 0.02 / np.sqrt(zs.size), rel=0.3)
    assert e == metrics.bootstrap(zp, zs, n_resamples=300, seed=3)  # reproducible
    # blocks of resamples give the same numbers as one block
    assert metrics.bootstrap(zp, zs, 50, seed=4) == metrics.bootstrap(zp, zs, 50, seed=4, chunk_elements=10)
    assert np.isnan(metrics.bootstrap(zp, zs, 0)["eta_err"])


def test_crps_gaussian_closed_form():
    e = bins.edges(180, 0.0, 0.4)
    mu = np.array([0.10, 0.20, 0.25, 0.15, 0.3])
    sig = np.array([0.01, 0.02, 0.03, 0.005, 0.015])
    y = np.array([0.11, 0.17, 0.25, 0.2, 0.31])
    got = metrics.crps(gaussian_pdfs(mu, sig, e), y, e)
    np.testing.assert_allclose(got, crps_gaussian(mu, sig, y), rtol=3e-3)
    # converges with finer bins (the only difference is the binning)
    e_fine = bins.edges(3600, 0.0, 0.4)
    got_fine = metrics.crps(gaussian_pdfs(mu, sig, e_fine), y, e_fine)
    np.testing.assert_allclose(got_fine, crps_gaussian(mu, sig, y), rtol=2e-5)


def test_crps_point_mass_exact():
    e = np.linspace(0, 1, 11)  # bins of 0.1
    pdf = np.zeros((3, 10))
    pdf[:, 2] = 1.0  # uniform on [0.2, 0.3]
    y = np.array([0.5, 0.25, 1.5])
    got = metrics.crps(pdf, y, e)
    # y above the bin: h/3 + (y - 0.3); y in the middle: 2 * (h/2)/3 * (1/2)^2 ... = h/12
    np.testing.assert_allclose(got, [0.1 / 3 + 0.2, 0.1 / 12, 0.1 / 3 + 1.2], rtol=1e-12)


def test_pit_known_values_and_calibrated_pdfs_are_flat():
    e = np.linspace(0, 1, 11)
    pdf = np.zeros((4, 10))
    pdf[:, 3] = 1.0
    np.testing.assert_allclose(metrics.pit(pdf, np.array([0.325, 0.1, 2.0, 0.3]), e), [0.25, 0.0, 1.0, 0.0], atol=1e-12)

    # PDFs whose z_spec are drawn from themselves: PIT is uniform
    rng = np.random.default_rng(7)
    n = 20000
    eg = bins.edges(180, 0.0, 0.4)
    mu = rng.uniform(0.08, 0.32, n)
    sig = rng.uniform(0.005, 0.03, n)
    pdf = gaussian_pdfs(mu, sig, eg)
    pdf /= pdf.sum(1, keepdims=True)
    c = np.cumsum(pdf, axis=1)
    k = (c < rng.random(n)[:, None]).sum(1).clip(0, 179)
    z_spec = eg[k] + rng.random(n) * np.diff(eg)[k]
    p = metrics.pit(pdf, z_spec, eg)
    dens, err, _ = metrics.pit_histogram(p, 20)
    stat = np.sum(((dens - 1) / err) ** 2)
    assert stat < chi2.ppf(0.999, 19), f"calibrated PIT not flat: chi2 = {stat:.1f}"
    # PDFs twice too narrow are caught by the same test
    narrow = gaussian_pdfs(mu, sig / 2, eg)
    dens2, err2, _ = metrics.pit_histogram(metrics.pit(narrow, z_spec, eg), 20)
    assert np.sum(((dens2 - 1) / err2) ** 2) > 10 * chi2.ppf(0.999, 19)
    assert dens2[0] > 1.5 and dens2[-1] > 1.5  # U-shaped


def test_width_and_quantile():
    e = bins.edges(180, 0.0, 0.4)
    flat = np.ones((1, 180))
    assert metrics.width(flat, e)[0] == pytest.approx(0.68 * 0.4)
    assert metrics.quantile(flat, 0.5, e)[0] == pytest.approx(0.2)
    sig = np.array([0.01, 0.02])
    w = metrics.width(gaussian_pdfs([0.2, 0.2], sig, e), e)
    np.testing.assert_allclose(w, 2 * norm.ppf(0.84) * sig, rtol=1e-2)  # bins of 0.0022
    ef = bins.edges(3600, 0.0, 0.4)
    wf = metrics.width(gaussian_pdfs([0.2, 0.2], sig, ef), ef)
    np.testing.assert_allclose(wf, 2 * norm.ppf(0.84) * sig, rtol=1e-4)
    with pytest.raises(ValueError):
        metrics.width(flat, e, level=1.2)


def test_unnormalised_and_chunked_inputs_agree(monkeypatch):
    rng = np.random.default_rng(5)
    e = bins.edges(180, 0.0, 0.4)
    pdf = rng.random((257, 180)).astype(np.float32)
    z = rng.uniform(-0.01, 0.41, 257)
    ref = (metrics.crps(pdf, z, e), metrics.pit(pdf, z, e), metrics.width(pdf, e))
    scaled = (metrics.crps(3 * pdf, z, e), metrics.pit(3 * pdf, z, e), metrics.width(3 * pdf, e))
    monkeypatch.setattr(metrics, "CHUNK", 16)
    chunked = (metrics.crps(pdf, z, e), metrics.pit(pdf, z, e), metrics.width(pdf, e))
    for a, b, c in zip(ref, scaled, chunked):
        np.testing.assert_allclose(a, b, rtol=1e-6)
        np.testing.assert_allclose(a, c, rtol=1e-12)
    # z_phot = sum_k z_k p_k
    np.testing.assert_allclose(metrics.z_phot(pdf, bins.midpoints(180, 0.0, 0.4)),
                               (pdf / pdf.sum(1, keepdims=True)) @ bins.midpoints(180, 0.0, 0.4), rtol=1e-6)


def test_bad_inputs_raise_clear_errors():
    e = bins.edges(180, 0.0, 0.4)
    with pytest.raises(ValueError, match="no positive probability"):
        metrics.crps(np.zeros((2, 180)), np.array([0.1, 0.2]), e)
    with pytest.raises(ValueError, match="edges"):
        metrics.pit(np.ones((2, 180)), np.array([0.1, 0.2]), e[:-1])
    with pytest.raises(ValueError, match="empty"):
        metrics.point_metrics([], [])


def test_bias_slope_recovers_a_known_slope_with_a_fair_error():
    rng = np.random.default_rng(3)
    x = rng.uniform(0.0, 0.2, 4000)
    dz = 0.05 * x + rng.normal(0, 0.005, x.size)
    dz[:40] = 2.0 * x[:40] + 0.1  # catastrophic outliers on a steep line: left out of the fit
    b, e, n = metrics.bias_slope(x, dz, n_resamples=300)
    assert n == x.size - 40
    # the least-squares standard error: sigma / (std(x) sqrt(n))
    se = 0.005 / (x[40:].std() * np.sqrt(n))
    assert e == pytest.approx(se, rel=0.2)
    assert abs(b - 0.05) < 4 * se
    b_all, _, n_all = metrics.bias_slope(x, dz, threshold=None, n_resamples=0)
    assert n_all == x.size and abs(b_all - 0.05) > 10 * se  # the outliers would have pulled it
    assert np.isnan(metrics.bias_slope(np.ones(10), np.zeros(10))[0])  # no spread in x
    assert np.isnan(metrics.bias_slope([0.1, 0.2], [0.0, 0.0])[0])
    with pytest.raises(ValueError, match="differ in shape"):
        metrics.bias_slope([0.1, 0.2], [0.0])


def test_partial_slope_separates_a_brightness_term_from_a_colour_term():
    # dz depends on the observed magnitude only; observed = dereddened + 2.75 E(B-V)
    rng = np.random.default_rng(3)
    n = 4000
    ebv = rng.gamma(2.0, 0.05, n)
    dered = rng.normal(18.0, 0.6, n)
    z = rng.uniform(0.02, 0.3, n)
    r_obs = dered + 2.75 * ebv
    dz = 0.006 * (r_obs - 18.0) + 0.05 * (z - 0.1) ** 2 + rng.normal(0.0, 0.01, n)
    b, e, m = metrics.partial_slope(ebv, dz, np.column_stack([z, z ** 2, r_obs]))
    assert m == n and abs(b) < 3 * e and 0 < e < 0.005
    b, e, _ = metrics.partial_slope(ebv, dz, np.column_stack([z, z ** 2, dered]))
    assert abs(b - 0.0165) < 3 * e  # at fixed dereddened r the E(B-V) term carries the dimming
    b0 = metrics.bias_slope(ebv, dz)[0]
    assert abs(metrics.partial_slope(ebv, dz, np.empty((n, 0)), n_resamples=0)[0] - b0) < 1e-12
    dz[:10] = 0.5  # outliers are left out, as in bias_slope
    assert metrics.partial_slope(ebv, dz, r_obs[:, None], n_resamples=0)[2] == n - 10
    assert np.isnan(metrics.partial_slope(ebv, dz, np.column_stack([2 * ebv]))[0])  # x a combination of the controls
    with pytest.raises(ValueError, match="differ in length"):
        metrics.partial_slope(ebv, dz, r_obs[:10, None])
