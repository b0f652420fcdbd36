"""SWarp and the native resampler: agreement on the real field and on synthetic frames,
coverage policy and failures of corrupt or missing frames."""

import shutil

import numpy as np
import pandas as pd
import pytest

from photoz.cutouts.group import make_cutouts, read_group, write_group
from photoz.cutouts.native import combine_median, lanczos3, resample_frame
from photoz.cutouts.stamps import grid_world, output_header
from synthetic_frames import cutouts_section, synthetic_frame
from photoz.sdss.frames import BANDS, noise_sigma, read_frame, read_photofield_calibration

needs_swarp = pytest.mark.skipif(shutil.which("SWarp") is None and shutil.which("swarp") is None,
                                 reason="SWarp binary not installed")


def test_lanczos3_kernel():
    assert lanczos3(0.0) == pytest.approx(1.0)
    np.testing.assert_allclose(lanczos3([1.0, 2.0, -1.0, 3.0, 3.5]), 0.0, atol=1e-12)
    assert lanczos3(0.5) == pytest.approx(np.sinc(0.5) * np.sinc(0.5 / 3))


def test_grid_world_matches_astropy():
    from astropy.wcs import WCS

    hdr = output_header(150.2, 29.9, 64, 0.396)
    w = WCS(hdr)
    R, D = grid_world([150.2], [29.9], 64, 0.396)
    ra, dec = w.all_pix2world(np.array([0, 63, 10]), np.array([0, 63, 40]), 0)
    np.testing.assert_allclose(R[0][[0, 63, 40], [0, 63, 10]], ra, atol=1e-10)
    np.testing.assert_allclose(D[0][[0, 63, 40], [0, 63, 10]], dec, atol=1e-10)


def test_resample_conserves_flux_and_centres_source(tmp_path):
    p = tmp_path / "frame-r-009001-1-0011.fits"
    synthetic_frame(p, 150.0, 30.0, shape=(200, 220), sources=[(150.001, 30.002, 100.0, 1.5)], noise=0.0)
    f = read_frame(p)
    vals, cov = resample_frame(f.image, f.wcs, [150.001], [30.002], 64, 0.396)
    assert cov.all()
    assert vals.sum() == pytest.approx(100.0, rel=2e-3)
    # the source sits at CRPIX (32.5, 1-based): between the 4 central pixels
    c = vals[0][31:33, 31:33]
    assert np.allclose(c, c.mean(), rtol=1e-3) and c.max() == vals.max()


def test_median_combination():
    v = np.stack([np.full((4, 4), a, np.float32) for a in (1.0, 5.0, 2.0, 10.0)])
    cov = np.ones_like(v, bool)
    cov[3, 0, 0] = False
    img, anyc = combine_median(v, cov)
    assert img[1, 1] == pytest.approx(3.5)  # even count: mean of the central two
    assert img[0, 0] == pytest.approx(2.0)  # frame 4 does not cover this pixel
    img, anyc = combine_median(v, np.zeros_like(cov))
    assert not anyc.any() and (img == 0).all()


def _galaxies(ids, pos, keys):
    return pd.DataFrame({"specObjID": np.array(ids, np.int64), "ra": [p[0] for p in pos],
                         "dec": [p[1] for p in pos], "frames": keys})


def _epochs(tmp_path, n_epochs=3, ra=150.0, dec=30.0, shape=(200, 220)):
    srcs = [(150.0, 30.0, 50.0, 1.2), (150.003, 29.999, 20.0, 2.0)]
    keys = []
    for e in range(n_epochs):
        run = 9001 + e
        for b, band in enumerate(BANDS):
            synthetic_frame(tmp_path / f"frame-{band}-{run:06d}-1-0011.fits.bz2", ra + 1e-4 * e, dec,
                            band=band, run=run, shape=shape, sources=srcs, noise=0.05, seed=10 * e + b)
        keys.append(f"{run}-1-11")
    return keys


@needs_swarp
def test_swarp_and_native_agree_on_synthetic_epochs(tmp_path):
    keys = _epochs(tmp_path, 3)
    gal = _galaxies([7, 3], [(150.0, 30.0), (150.003, 29.999)], [keys, keys])
    nat = make_cutouts(gal, tmp_path, cutouts_section(resampler="native"))
    sw = make_cutouts(gal, tmp_path, cutouts_section(resampler="swarp", threads=2))
    assert list(nat.specObjID) == [3, 7] == list(sw.specObjID)
    assert (nat.nframes == 3).all() and (sw.nframes == 3).all()
    np.testing.assert_allclose(nat.coverage, 1.0)
    d = np.abs(nat.cube - sw.cube)
    assert np.median(d) < 0.05 * 0.05
    assert nat.cube.sum() / sw.cube.sum() == pytest.approx(1.0, abs=5e-3)


def test_partial_coverage_policy(tmp_path):
    keys = _epochs(tmp_path, 1, shape=(120, 140))
    f = read_frame(tmp_path / "frame-r-009001-1-0011.fits.bz2")
    ra, dec = f.wcs.all_pix2world([[139.0, 60.0]], 0)[0]  # on the last column: half covered
    gal = _galaxies([1, 2], [(150.0, 30.0), (ra, dec)], [keys, keys])
    drop = make_cutouts(gal, tmp_path, cutouts_section(resampler="native", partial_coverage="drop"))
    assert list(drop.specObjID) == [1]
    row = drop.failures[drop.failures.specObjID == 2]
    assert len(row) == 1 and "partial coverage" in row.reason.iloc[0]
    keep = make_cutouts(gal, tmp_path, cutouts_section(resampler="native", partial_coverage="zero_fill", min_coverage=0.3))
    assert list(keep.specObjID) == [1, 2] and keep.failures.empty
    cov = keep.coverage[1]
    assert np.all((cov > 0.3) & (cov < 0.7))
    assert (keep.cube[1] == 0).sum() >= 5 * 64 * 20  # uncovered pixels are zeros
    strict = make_cutouts(gal, tmp_path, cutouts_section(resampler="native", partial_coverage="zero_fill", min_coverage=0.9))
    assert "below min_coverage" in strict.failures.reason.iloc[0]


@pytest.mark.parametrize("resampler", ["native", pytest.param("swarp", marks=needs_swarp)])
def test_corrupt_and_missing_frames_fail_only_their_galaxies(tmp_path, resampler):
    keys = _epochs(tmp_path, 1)
    # a second field with a corrupt g frame, a third field whose z frame is missing
    for b, band in enumerate(BANDS):
        synthetic_frame(tmp_path / f"frame-{band}-009001-1-0012.fits.bz2", 150.0, 30.0, band=band, field=12,
                        shape=(200, 220), truncate=(band == "g"), seed=b)
        if band != "z":
            synthetic_frame(tmp_path / f"frame-{band}-009001-1-0013.fits.bz2", 150.0, 30.0, band=band,
                            field=13, shape=(200, 220), seed=b)
    gal = _galaxies([10, 11, 12, 13], [(150.0, 30.0)] * 4,
                    [keys, ["9001-1-12"], ["9001-1-13"], []])
    res = make_cutouts(gal, tmp_path, cutouts_section(resampler=resampler))
    assert list(res.specObjID) == [10]
    f = res.failures.set_index("specObjID")
    assert "frame-g-009001-1-0012" in f.loc[11, "reason"] and f.loc[11, "band"] == "g"
    assert "missing" in f.loc[12, "reason"] and f.loc[12, "band"] == "z"
    assert "no overlapping frame" in f.loc[13, "reason"]
    npz, csv = tmp_path / "out" / "group-0.npz", tmp_path / "out" / "group-0-failures.csv"
    write_group(res, npz, csv)
    back = read_group(npz)
    assert back["cube"].shape == (1, 5, 64, 64) and back["cube"].dtype == np.float32
    assert back["nframes"].dtype == np.int16 and back["coverage"].dtype == np.float32
    assert set(pd.read_csv(csv).specObjID) == {11, 12, 13}


@pytest.fixture(scope="module")
def real_cutouts(real_field, tmp_path_factory):
    """Native and SWarp cutouts of the brightest sources of the real field."""
    from scipy.ndimage import maximum_filter, uniform_filter

    f = read_frame(real_field / "frame-r-002583-2-0136.fits.bz2")
    sm = uniform_filter(f.image, 5)
    peaks = (sm == maximum_filter(sm, 61)) & (sm > 0.5)
    peaks[:80], peaks[-80:], peaks[:, :80], peaks[:, -80:] = False, False, False, False
    y, x = np.nonzero(peaks)
    top = np.argsort(sm[y, x])[::-1][:4]
    ra, dec = f.wcs.all_pix2world(x[top] + 0.37, y[top] - 0.21, 0)
    gal = _galaxies(np.arange(1, 5), list(zip(ra, dec)), [["2583-2-136"]] * 4)
    nat = make_cutouts(gal, real_field, cutouts_section(resampler="native"))
    sw = make_cutouts(gal, real_field, cutouts_section(resampler="swarp", threads=2))
    cal = read_photofield_calibration(real_field / "photoField-002583-2.fits", 136)
    sig = {}
    for band in BANDS:
        fb = read_frame(real_field / f"frame-{band}-002583-2-0136.fits.bz2") if band != "r" else f
        sig[band] = float(np.median(noise_sigma(fb, cal["gain"], cal["dark_variance"])))
    return nat, sw, sig


@needs_swarp
def test_native_matches_swarp_on_real_field(real_cutouts):
    nat, sw, sig = real_cutouts
    assert len(nat) == len(sw) == 4
    for b, band in enumerate(BANDS):
        d = np.abs(nat.cube[:, b] - sw.cube[:, b])
        assert np.median(d) < 0.05 * sig[band], band
        ratio = nat.cube[:, b].sum(axis=(1, 2)) / sw.cube[:, b].sum(axis=(1, 2))
        np.testing.assert_allclose(ratio, 1.0, atol=5e-3, err_msg=band)
    assert (nat.nframes == 1).all() and (sw.nframes == 1).all()
