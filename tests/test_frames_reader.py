"""The SDSS frame reader and noise model, on the real field and synthetic frames."""

import numpy as np
import pytest

from synthetic_frames import synthetic_frame
from photoz.sdss.frames import (FrameError, interpolate_sky, noise_sigma, read_frame,
                                read_photofield_calibration)


@pytest.fixture(scope="module")
def real_r(real_field):
    return read_frame(real_field / "frame-r-002583-2-0136.fits.bz2")


def test_real_frame_contents(real_r):
    f = real_r
    assert f.image.shape == (1489, 2048) and f.image.dtype == np.float32
    assert (f.band, f.run, f.camcol, f.field) == ("r", 2583, 2, 136)
    assert f.calibvec.shape == (2048,)
    assert f.sky.shape == f.image.shape
    # r-band sky of this Stripe 82 field is ~150 DN; image is sky-subtracted
    assert 100 < np.median(f.sky) < 200
    assert abs(np.median(f.image)) < 0.05
    ra, dec = f.wcs.all_pix2world([[1023.5, 744.0]], 0)[0]
    assert ra == pytest.approx(323.3428, abs=1e-3) and dec == pytest.approx(-0.7340, abs=1e-3)


def test_real_noise_recipe(real_r, real_field):
    cal = read_photofield_calibration(real_field / "photoField-002583-2.fits", 136)
    assert cal["gain"]["r"] == pytest.approx(4.6, abs=1e-3)
    sig = noise_sigma(real_r, cal["gain"], cal["dark_variance"])
    y, x = 700, 900
    dn = real_r.image[y, x] / real_r.calibvec[x] + real_r.sky[y, x]
    expect = np.sqrt(dn / 4.6 + cal["dark_variance"]["r"]) * real_r.calibvec[x]
    assert sig[y, x] == pytest.approx(expect, rel=1e-5)
    # the recipe is close to the empirical pixel-to-pixel noise of the sky
    d = np.diff(real_r.image[200:400, 200:400], axis=1).ravel() / np.sqrt(2)
    emp = 1.4826 * np.median(np.abs(d - np.median(d)))
    assert 0.6 < np.median(sig) / emp < 1.4


def test_sky_interpolation_matches_scipy():
    from scipy.interpolate import RegularGridInterpolator

    rng = np.random.default_rng(1)
    allsky = rng.random((12, 16))
    xi = np.linspace(-0.4, 15.4, 50)
    yi = np.linspace(0.3, 11.2, 40)
    got = interpolate_sky(allsky, xi, yi)
    interp = RegularGridInterpolator((np.arange(12), np.arange(16)), allsky)
    Y, X = np.meshgrid(np.clip(yi, 0, 11), np.clip(xi, 0, 15), indexing="ij")
    np.testing.assert_allclose(got, interp((Y, X)), rtol=1e-5)


def test_truncated_and_missing_frames_name_the_file(tmp_path):
    good = tmp_path / "frame-g-009001-1-0011.fits.bz2"
    synthetic_frame(good, 150.0, 30.0, band="g", shape=(60, 80))
    f = read_frame(good)
    assert (f.band, f.run, f.camcol, f.field) == ("g", 9001, 1, 11)
    bad = tmp_path / "frame-g-009001-1-0012.fits.bz2"
    synthetic_frame(bad, 150.0, 30.0, band="g", shape=(60, 80), truncate=True)
    with pytest.raises(FrameError, match="frame-g-009001-1-0012"):
        read_frame(bad)
    with pytest.raises(FrameError, match="not found"):
        read_frame(tmp_path / "frame-g-009001-1-0013.fits.bz2")
    junk = tmp_path / "frame-g-009001-1-0014.fits"
    junk.write_bytes(b"not a fits file at all" * 100)
    with pytest.raises(FrameError, match="frame-g-009001-1-0014"):
        read_frame(junk)


def test_frame_identity_on_all_five_real_bands(real_field, tmp_path):
    """FRAME in a real header is field + 2 (CAMROW - 1); the reader's field is the file name's."""
    import shutil

    from astropy.io import fits

    for band in "ugriz":
        path = real_field / f"frame-{band}-002583-2-0136.fits.bz2"
        f = read_frame(path)
        assert (f.band, f.run, f.camcol, f.field) == (band, 2583, 2, 136)
        assert f.key == "2583-2-136"
        h = f.header
        assert "FIELD" not in h and h["FRAME"] == 136 + 2 * (h["CAMROW"] - 1)
    # the same g frame under a non-SAS name: FRAME (144) is not taken for the field
    odd = tmp_path / "g.fits.bz2"
    shutil.copy(real_field / "frame-g-002583-2-0136.fits.bz2", odd)
    with pytest.raises(FrameError, match="no FIELD header keyword.*FRAME is not the field"):
        read_frame(odd)
    # with a FIELD keyword it is read from the header
    with fits.open(real_field / "frame-g-002583-2-0136.fits.bz2") as hdul:
        hdul[0].header["FIELD"] = 136
        hdul.writeto(tmp_path / "g-with-field.fits")
    f = read_frame(tmp_path / "g-with-field.fits")
    assert (f.band, f.run, f.camcol, f.field) == ("g", 2583, 2, 136)


def test_header_and_name_must_agree(tmp_path):
    from astropy.io import fits

    path = tmp_path / "frame-g-009001-1-0011.fits"
    synthetic_frame(path, 150.0, 30.0, band="g", shape=(60, 80))
    with fits.open(path) as hdul:
        hdul[0].header["FIELD"] = 12
        hdul.writeto(tmp_path / "frame-g-009001-1-0013.fits")
    with pytest.raises(FrameError, match="header says field 12 but the file name says 13"):
        read_frame(tmp_path / "frame-g-009001-1-0013.fits")
