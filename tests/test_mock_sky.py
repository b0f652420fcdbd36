"""Rendered mock frames, the mock SkyServer and the real-versus-mock frame reader."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest

from photoz.config import fill_section
from photoz.mock import geometry as geo
from photoz.mock.chunk import frame_path, run_chunk
from photoz.mock.render import psf_profile, render_frame

#: the schema fills what is not given, as in the workflow
TINY = fill_section("mock", {
    "seed": 5,
    "n_chunks": 1,
    "target_density": 1500.0,
    "runs": [{"run": 7001, "ra_start": 40.0, "dec": 10.0, "camcols": [2], "n_fields": 1, "epochs": 1}],
    "suspect_zone": {"ra_min": 0.0, "ra_max": 1.0, "dec_min": 0.0, "dec_max": 1.0},
    "suspect_zone_error_mag": 0.05,
    "faint_density": 1000.0,
    "faint_r_max": 21.0,
    "star_density": 800.0,
    "photoz_training_size": 500,
})


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def tiny_chunk(tmp_path_factory):
    root = tmp_path_factory.mktemp("mock-a")
    cat, fields = run_chunk(TINY, 0, root / "sas")
    return root, cat, fields


def test_same_seed_gives_byte_identical_outputs(tiny_chunk, tmp_path):
    root, cat, fields = tiny_chunk
    cat2, fields2 = run_chunk(TINY, 0, tmp_path / "sas")
    pd.testing.assert_frame_equal(cat, cat2)
    pd.testing.assert_frame_equal(fields, fields2)
    for b in geo.BANDS:
        a = frame_path(root / "sas", 7001, 2, geo.FIELD0, b)
        c = frame_path(tmp_path / "sas", 7001, 2, geo.FIELD0, b)
        assert a.exists() and _sha(a) == _sha(c), b
    # and another seed gives another sky
    other = dict(TINY, seed=6)
    assert geo.frame_conditions(other, geo.frames(other)[0])["psfWidth"][2] != \
        geo.frame_conditions(TINY, geo.frames(TINY)[0])["psfWidth"][2]


def test_psf_fwhm_measured_with_sep_matches_field_table():
    import sep

    mock = dict(TINY, seed=11)
    fr = geo.frames(mock)[0]
    cond = geo.frame_conditions(mock, fr)
    rng = np.random.default_rng(3)
    n = 60
    x = rng.uniform(100, geo.NCOL - 100, n)
    y = rng.uniform(100, geo.NROW - 100, n)
    ra, dec = geo.frame_wcs(fr).all_pix2world(x, y, 0)
    stars = pd.DataFrame({"kind": "star", "ra": ra, "dec": dec, "z": 0.0, "bt": 0.0, "hlr_bulge": 0.0,
                          "hlr_disk": 0.0, "q_bulge": 1.0, "q_disk": 1.0, "pa": 0.0})
    flux = 10 ** (-0.4 * (rng.uniform(16.5, 18.0, n) - 22.5))
    for b in geo.BANDS:
        stars[f"flux_bulge_{b}"] = 0.0
        stars[f"flux_disk_{b}"] = flux
    out = render_frame(mock, fr, stars, cond)
    for j in (2, 0):  # r and u
        band = geo.BANDS[j]
        img = np.ascontiguousarray(out[band]["image"])
        fwhm_true = cond["psfWidth"][j]
        # isolated stars only
        d = np.hypot(x[:, None] - x[None], y[:, None] - y[None]) + np.eye(n) * 1e9
        iso = d.min(1) > 40
        r50, flag = sep.flux_radius(img, x[iso], y[iso], np.full(iso.sum(), 6 * fwhm_true / geo.PIXSCALE), 0.5,
                                    subpix=5)
        ratio = psf_profile(1.0).half_light_radius / 1.0  # Moffat hlr per unit FWHM
        fwhm_meas = np.median(r50[flag == 0]) * geo.PIXSCALE / ratio
        assert abs(fwhm_meas / fwhm_true - 1) < 0.05, (band, fwhm_meas, fwhm_true)


def test_mock_skyserver_answers_the_paper_query_with_its_cuts(tiny_chunk, tmp_path):
    from photoz.mock.merge import build_tables
    from photoz.mock.skyserver import run_query, translate_sql, write_database

    _, cat, fields = tiny_chunk
    # force rows that each cut must reject
    cat = cat.copy()
    gal = np.nonzero((cat["class"] == "GALAXY").to_numpy())[0]
    assert len(gal) > 20
    cat.loc[gal[0], "zWarning"] = 4
    cat.loc[gal[1], "clean"] = 0
    cat.loc[gal[2], "insideMask"] = 1
    cat.loc[gal[3], "primtarget"] = 32
    cat.loc[gal[4], "survey"] = "boss"
    cat.loc[gal[5], "targetType"] = "QA"
    cat.loc[gal[6], "class"] = "STAR"
    cat.loc[gal[7], "petroMag_r"] = 18.2 + cat.loc[gal[7], "extinction_r"]
    t = build_tables(TINY, cat, fields)
    db = tmp_path / "sky.sqlite"
    write_database(db, *(t[k] for k in ("SpecObjAll", "PhotoObjAll", "Photoz", "galSpecInfo", "Field")))
    sql = """SELECT TOP 1000000 za.specObjID, za.z, po.objID, po.run, po.camcol, po.field,
    (po.petroMag_r - po.extinction_r) as dered_petro_r, zp.z as zphot, zp.zErr as dzphot,
    zi.primtarget, f.psfWidth_r, f.sky_r, f.gain_r, f.darkVariance_r
    INTO mydb.SDSS_DR12
    FROM SpecObjAll za
    JOIN PhotoObjAll po ON (po.objID = za.bestObjID)
    JOIN Photoz zp ON (zp.objID = za.bestObjID)
    JOIN galSpecInfo zi ON (zi.SpecObjID = za.specObjID)
    JOIN Field f ON (f.run = po.run AND f.camcol = po.camcol AND f.field = po.field)
    WHERE za.z > 0 and za.z < 0.4 and za.zWarning = 0
    and za.targetType = \u2018SCIENCE\u2019 and za.survey = 'sdss'
    and za.class = 'GALAXY' and (zi.primtarget & 64) > 0
    and po.clean = 1 and po.insideMask = 0
    and dered_petro_r <= 17.8;"""
    assert "LIMIT 1000000" in translate_sql(sql) and "mydb" not in translate_sql(sql)
    got = run_query(db, sql)
    truth = t["truth"]
    expected = set(truth.loc[truth["selected_by_cuts"], "specObjID"])
    assert set(got["specObjID"]) == expected
    # repeat spectra as in DR12: same bestObjID, own specObjID, one of each pair sciencePrimary
    spec = t["SpecObjAll"]
    rep = spec[spec["bestObjID"].duplicated(keep=False)]
    assert len(rep) > 0 and rep.groupby("bestObjID")["sciencePrimary"].sum().eq(1).all()
    # the query returns the repeats that pass the cuts (in the truth's selected set above)
    assert truth.loc[truth["repeat_spectrum"], "specObjID"].isin(spec["specObjID"]).all()
    # per-object PSF FWHM and sky (PhotoObjAll) are those of the object's field in the mock
    po = t["PhotoObjAll"].merge(t["Field"], on=["run", "camcol", "field"])
    assert np.allclose(po["psffwhm_r"], po["psfWidth_r"]) and np.allclose(po["sky_g_x"], po["sky_g_y"])
    rejected = set(cat.loc[gal[:8], "specObjID"])
    assert not rejected & set(got["specObjID"])
    assert got["specObjID"].is_unique and got["specObjID"].dtype == np.int64
    assert (got["dered_petro_r"] <= 17.8).all() and got["zphot"].between(0, 1).all()
    # Photoz kNN stand-in: a real photometric redshift, not a copy of z
    assert 0.005 < np.median(np.abs(got["zphot"] - got["z"])) < 0.1


def _sky_normalised_scatter(frame, gain, dark):
    """Measured pixel scatter over the recipe's predicted sigma, on source-free sky.

    Sources (3 sigma detections, dilated) are masked; the scatter is taken from
    the negative side of the distribution (median minus 15.87th percentile),
    which faint undetected sources cannot inflate.
    """
    import scipy.ndimage as ndi
    import sep

    from photoz.sdss.frames import noise_sigma

    sep.set_extract_pixstack(3_000_000)
    sep.set_sub_object_limit(4096)
    sigma = noise_sigma(frame, gain, dark)
    img = np.ascontiguousarray(frame.image, dtype=np.float32)
    _, seg = sep.extract(img, 3.0, err=sigma, minarea=5, segmentation_map=True)
    mask = ndi.binary_dilation(seg > 0, iterations=4)
    resid = (img / sigma)[~mask]
    assert resid.size > 0.3 * img.size
    return float(np.median(resid) - np.percentile(resid, 15.865))


def _check_frame_layout(path):
    from astropy.io import fits

    with fits.open(path) as h:
        assert len(h) == 4
        assert h[0].data.dtype.name in ("float32", ">f4") and h[0].data.shape == (1489, 2048)
        assert h[1].data.shape == (2048,)
        assert set(h[2].columns.names) == {"ALLSKY", "XINTERP", "YINTERP"}
        assert h[2].data["ALLSKY"][0].shape == (192, 256)
        assert {"RUN", "CAMCOL", "FIELD", "FILTER", "A", "B", "C", "D", "E", "F", "MJD"} <= set(h[3].columns.names)
        hdr = h[0].header
        for k in ("NMGY", "RUN", "CAMCOL", "FRAME", "FILTER", "BUNIT", "CTYPE1", "CTYPE2", "CD1_2", "CD2_1",
                  "RERUN", "TAI", "DATE-OBS"):
            assert k in hdr, (path, k)
        assert hdr["CTYPE1"] == "RA---TAN" and hdr["BUNIT"] == "nanomaggy"
        # FRAME as SDSS writes it: the CCD's raw frame number, field + 2 (CAMROW - 1), not the field
        from photoz.sdss.frames import parse_frame_name

        assert hdr["FRAME"] == parse_frame_name(path)[3] + 2 * (hdr["CAMROW"] - 1)
        return hdr


def test_one_reader_for_real_and_mock_frames(real_field, tiny_chunk):
    from photoz.sdss.frames import read_frame, read_photofield_calibration

    root, _, fields = tiny_chunk
    real_cal = read_photofield_calibration(real_field / "photoField-002583-2.fits", 136)
    row = fields.iloc[0]
    for band in ("r", "u"):
        cases = [
            (real_field / f"frame-{band}-002583-2-0136.fits.bz2", real_cal["gain"][band], real_cal["dark_variance"][band]),
            (frame_path(root / "sas", 7001, 2, geo.FIELD0, band), row[f"gain_{band}"], row[f"darkVariance_{band}"]),
        ]
        for path, gain, dark in cases:
            hdr = _check_frame_layout(path)
            f = read_frame(path)
            assert f.band == band and f.image.shape == (1489, 2048) and f.sky.shape == (1489, 2048)
            # WCS: 0.396"/pixel, rows along RA
            scale = np.sqrt(abs(np.linalg.det(f.wcs.pixel_scale_matrix))) * 3600
            assert abs(scale - 0.396) < 0.002, (path, scale)
            ra0, dec0 = f.wcs.all_pix2world([[0, 0], [0, 100]], 0).T
            assert abs(dec0[1] - dec0[0]) < 1e-4 and abs(ra0[1] - ra0[0]) > 1e-3
            assert 0.5 * hdr["NMGY"] < np.median(f.calibvec) < 2 * hdr["NMGY"]
            ratio = _sky_normalised_scatter(f, gain, dark)
            assert abs(ratio - 1) < 0.10, (path, ratio)


def test_catalogue_ebv_is_a_noisy_estimate_and_the_truth_stays_in_the_truth_table(tiny_chunk):
    from photoz.mock.merge import build_tables

    _, cat, fields = tiny_chunk
    ratio = cat["ebv_sfd"] / cat["ebv_true"]
    assert np.allclose(cat["extinction_r"], 2.751 * cat["ebv_sfd"])
    scatter = TINY["ebv_sfd_scatter"]
    assert 0.5 * scatter < np.std(np.log(ratio)) < 1.5 * scatter
    t = build_tables(TINY, cat, fields)
    # one row per spectrum: a repeat spectrum (specObjID with REPEAT_SPECOBJID_BIT set) has its galaxy's E(B-V)
    from photoz.mock.merge import REPEAT_SPECOBJID_BIT

    gs = t["galSpecInfo"]
    first = gs["specObjID"].to_numpy(np.int64) & ~(np.int64(1) << REPEAT_SPECOBJID_BIT)
    expect = cat.set_index("specObjID")["ebv_sfd"].reindex(first).to_numpy()
    assert np.allclose(gs["e_bv_sfd"].to_numpy(), expect)
    assert "ebv_true" in t["truth"].columns
    for name in ("SpecObjAll", "PhotoObjAll", "Photoz", "galSpecInfo", "Field"):
        assert not any("true" in c.lower() for c in t[name].columns), name


def test_injected_zone_is_one_band_of_the_served_frames_only():
    """A suspect frame is served with its g zero point off by suspect_zone_error_mag; the image the catalogue
    is measured on, and every other band, are those of the same frame outside the zone."""
    from photoz.mock.render import frame_hdul

    cols = ["ra", "dec", "kind", "hlr_bulge", "hlr_disk", "q_bulge", "q_disk", "pa"]
    cols += [f"flux_{c}_{b}" for c in ("bulge", "disk") for b in geo.BANDS]
    empty = pd.DataFrame({c: pd.Series(dtype=float if c != "kind" else object) for c in cols})
    inside = dict(TINY, suspect_zone={"ra_min": 0.0, "ra_max": 359.9, "dec_min": -89.0, "dec_max": 89.0},
                  suspect_zone_error_mag=0.04, suspect_zone_band="g")
    fr = geo.frames(inside)[0]
    cond = geo.frame_conditions(inside, fr)
    got = render_frame(inside, fr, empty, cond)
    ref = render_frame(dict(TINY, suspect_zone_band="g"), fr, empty, cond)  # the same frame, outside the zone
    assert got["suspect"] and got["suspect_band"] == "g" and got["suspect_mag"] == 0.04
    assert not ref["suspect"] and "served" not in ref["g"]
    factor = 10 ** (-0.4 * 0.04)
    for b in geo.BANDS:
        np.testing.assert_array_equal(got[b]["image"], ref[b]["image"])  # what the catalogue is measured on
        np.testing.assert_array_equal(got[b]["calibvec"], ref[b]["calibvec"])
        served = frame_hdul(inside, fr, b, got, cond)
        img = served[0].data
        if b == "g":
            big = np.abs(ref[b]["image"]) > 1.0  # away from float truncation of tiny values
            np.testing.assert_allclose(img[big] / ref[b]["image"][big], factor, rtol=3e-3)
            np.testing.assert_allclose(served[1].data, ref[b]["calibvec"] * factor, rtol=1e-6)
        else:
            np.testing.assert_array_equal(img, ref[b]["image"])
    # the earlier grey injection (band null): the catalogue's image is off in every band too
    grey = render_frame(dict(inside, suspect_zone_band=None), fr, empty, cond)
    assert grey["suspect_band"] == "all" and "served" not in grey["r"]
    big = np.abs(ref["r"]["image"]) > 1.0
    np.testing.assert_allclose(grey["r"]["image"][big] / ref["r"]["image"][big], factor, rtol=3e-3)


def test_stamp_skip_never_drops_a_stamp_that_touches_the_frame():
    """render's skip of stamps outside the frame is conservative: every stamp GalSim would place
    overlapping the frame (at its edges, for each stamp size used) is drawn."""
    import galsim

    from photoz.mock.render import _stamp_reaches_frame

    frame = galsim.BoundsI(1, geo.NCOL, 1, geo.NROW)
    prof = galsim.Gaussian(sigma=1.0)
    rng = np.random.default_rng(3)
    for n in (24, 32, 33, 160, 256):
        edges = np.concatenate([-n / 2 + np.arange(-4, 4, 0.37), geo.NCOL - 1 + n / 2 + np.arange(-4, 4, 0.37)])
        for x in edges:
            y = rng.uniform(0, geo.NROW - 1)
            for xx, yy in ((x, y), (y, x - geo.NCOL + geo.NROW)):  # each edge, in x and in y
                stamp = prof.drawImage(nx=n, ny=n, scale=0.396, center=galsim.PositionD(xx + 1, yy + 1))
                if (stamp.bounds & frame).isDefined():
                    assert _stamp_reaches_frame(xx, yy, n), (n, xx, yy)
    assert not _stamp_reaches_frame(-200.0, 500.0, 32)
