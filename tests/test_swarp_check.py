"""The SWarp check of a native run (photoz.cutouts.swarp_check): agreement on identical inputs, a
shifted native cube caught, a damaged frame counted as a failure, a deterministic subset, the config
check against deleted frames, and the paper's sentence."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from photoz.config import ConfigError, load_config, validate_config
from photoz.cutouts import group as cg
from photoz.cutouts import swarp_check as sc
from synthetic_frames import cutouts_section, sdss_section, synthetic_frame
from photoz.sdss.frames import BANDS
from photoz.sdss.sas import frame_name, retrieve_group

ROOT = Path(__file__).resolve().parents[1]
needs_swarp = pytest.mark.skipif(shutil.which("SWarp") is None and shutil.which("swarp") is None,
                                 reason="SWarp binary not installed")
FIELDS = [(9001, 1, 11), (9002, 1, 11)]  # two epochs of the same field
# group -> galaxies (specObjID, ra, dec)
GROUPS = {0: [(11, 150.0, 30.0), (12, 150.003, 29.999), (13, 149.998, 30.002)],
          1: [(21, 150.001, 29.998), (22, 149.999, 30.001)]}
CUTCFG = cutouts_section(swarp_check_galaxies=200)


def _sas_frame(path, ra, dec, band, run, seed):
    """A synthetic SDSS frame (4 HDUs, bz2) at ``path``."""
    import bz2
    import io

    from astropy.io import fits

    tmp = path.with_suffix("")
    srcs = [(r, d, 40.0 - 5 * k, 1.2 + 0.2 * k) for k, (_, r, d) in enumerate(GROUPS[0] + GROUPS[1])]
    synthetic_frame(tmp, ra, dec, band=band, run=run, shape=(200, 220), sources=srcs, noise=0.05, seed=seed)
    with fits.open(tmp) as h:
        hdus = fits.HDUList([h[0].copy(), h[1].copy(), h[2].copy(),
                             fits.BinTableHDU.from_columns([fits.Column("RA", "D", array=[ra])])])
        buf = io.BytesIO()
        hdus.writeto(buf)
    tmp.unlink()
    path.write_bytes(bz2.compress(buf.getvalue(), 1))


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Two groups retrieved from a tiny SAS tree and cut with the native resampler, as the run does."""
    tmp = tmp_path_factory.mktemp("swarpcheck")
    sas = tmp / "sas"
    for e, (r, c, f) in enumerate(FIELDS):
        for b, band in enumerate(BANDS):
            p = sas / "301" / str(r) / str(c) / frame_name(band, r, c, f)
            p.parent.mkdir(parents=True, exist_ok=True)
            _sas_frame(p, 150.0 + 1e-4 * e, 30.0, band, r, 10 * e + b)
    keys = [f"{r}-{c}-{f}" for r, c, f in FIELDS]
    rows = [(s, g) for g, gal in GROUPS.items() for s, _, _ in gal]
    gal = pd.DataFrame({"specObjID": np.array([s for s, _ in rows], np.int64), "group": [g for _, g in rows],
                        "frames": [keys] * len(rows), "n_epochs": 2, "stripe82": True})
    gal.to_parquet(tmp / "galaxies.parquet")
    pos = [p for g in GROUPS.values() for p in g]
    pd.DataFrame({"specObjID": np.array([p[0] for p in pos], np.int64), "ra": [p[1] for p in pos],
                  "dec": [p[2] for p in pos]}).to_parquet(tmp / "catalog.parquet")
    cubes, manifests = [], []
    for g in GROUPS:
        out = tmp / "frames" / f"group-{g}"
        retrieve_group(gal[gal["group"] == g], g, f"file://{sas}", out, sdss_section(301))
        manifests.append(out / "MANIFEST.json")
        cut = tmp / "cutouts"
        rc = cg.main(["--group", str(g), "--manifest", str(out / "MANIFEST.json"),
                      "--galaxies", str(tmp / "galaxies.parquet"), "--catalog", str(tmp / "catalog.parquet"),
                      "--config-json", json.dumps(CUTCFG), "--out", str(cut / f"group-{g}.npz"),
                      "--failures", str(cut / f"group-{g}-failures.csv"), "--losses", str(cut / f"group-{g}-losses.json")])
        assert rc == 0
        cubes.append(cut / f"group-{g}.npz")
    return tmp, cubes, manifests


def _check(tmp, cubes, manifests, n=200, seed=2019, out=None):
    out = out or tmp / "cutouts" / "swarp_check.json"
    args = ["--cubes", *map(str, cubes), "--manifests", *map(str, manifests), "--galaxies", str(tmp / "galaxies.parquet"),
            "--catalog", str(tmp / "catalog.parquet"),
            "--config-json", json.dumps({"seed": seed, "cutouts": {**CUTCFG, "swarp_check_galaxies": n}}),
            "--out", str(out), "--log", str(tmp / "logs" / "swarp_check.log")]
    assert sc.main(args) == 0
    return json.loads(Path(out).read_text())


@needs_swarp
def test_identical_inputs_agree_well_below_a_tenth_of_the_noise(run):
    tmp, cubes, manifests = run
    res = _check(tmp, cubes, manifests)
    assert res["n_pool"] == 5 and res["n_drawn"] == 5 and res["n_compared"] == 5 and res["n_failed"] == 0
    assert res["groups_drawn_from"] == [0, 1] and res["n_nframes_differ"] == 0
    for band in BANDS:
        v = res["bands"][band]
        assert v["n_galaxies"] == 5 and v["n_pixels"] == 5 * 64 * 64
        assert v["p95_abs_diff_sigma"] < 0.01, (band, v)
        assert v["n_flux_ratio"] == 5 and abs(v["median_flux_ratio"] - 1) < 1e-3
        # the noise measured on the cube: the frames' 0.05 after the median of two epochs and resampling
        assert 0.02 < v["median_sigma"] < 0.06
    assert res["agree"] is True and res["worst_p95_abs_diff_sigma"] < sc.AGREE_SIGMA
    assert "5 compared, 0 failed" in (tmp / "logs" / "swarp_check.log").read_text()
    assert not (tmp / "cutouts" / ".swarp_check.stamps").exists()


@needs_swarp
def test_a_shifted_native_cube_is_caught(run, tmp_path):
    tmp, cubes, manifests = run
    shifted = []
    for p in cubes:  # the native cubes shifted by one pixel along the columns
        d = cg.read_group(p)
        q = tmp_path / p.name
        np.savez(q, specObjID=d["specObjID"], cube=np.roll(d["cube"], 1, axis=-1), nframes=d["nframes"],
                 coverage=d["coverage"])
        shifted.append(q)
    res = _check(tmp, shifted, manifests, out=tmp_path / "swarp_check.json")
    assert res["n_compared"] == 5
    assert res["agree"] is False
    assert res["worst_median_abs_diff_sigma"] > 0.5  # two independent noise pixels differ by ~1 sigma
    assert res["worst_p95_abs_diff_sigma"] > 2.0


@needs_swarp
def test_a_frame_damaged_since_the_cutouts_fails_its_galaxies_and_is_counted(run, tmp_path):
    tmp, cubes, manifests = run
    copy = tmp_path / "frames"
    shutil.copytree(tmp / "frames", copy)
    man = copy / "group-1" / "MANIFEST.json"
    victim = sorted((copy / "group-1").glob("frame-g-*.fits.bz2"))[0]
    victim.write_bytes(victim.read_bytes()[:-100])
    res = _check(tmp, cubes, [manifests[0], man], out=tmp_path / "swarp_check.json")
    assert res["n_drawn"] == 5 and res["n_failed"] == 2 and res["n_compared"] == 3
    failed = {f["specObjID"] for f in res["failures"]}
    assert failed == {21, 22}
    assert all("sha256" in f["reason"] for f in res["failures"])
    assert res["bands"]["g"]["n_galaxies"] == 3


@needs_swarp
def test_the_subset_is_deterministic_and_seeded(run, tmp_path):
    tmp, cubes, manifests = run
    a = _check(tmp, cubes, manifests, n=3, out=tmp_path / "a.json")
    b = _check(tmp, list(reversed(cubes)), list(reversed(manifests)), n=3, out=tmp_path / "b.json")
    assert a["specObjID"] == b["specObjID"] and len(a["specObjID"]) == 3 and a["n_compared"] == 3
    assert a["bands"] == b["bands"]


def test_draw_subset():
    ids = np.arange(10_000, 11_000, dtype=np.int64)
    s1 = sc.draw_subset(ids, 200, 2019)
    assert len(s1) == 200 and len(set(s1)) == 200 and np.all(np.diff(s1) > 0) and np.isin(s1, ids).all()
    np.testing.assert_array_equal(s1, sc.draw_subset(ids[::-1], 200, 2019))  # order of the cubes does not matter
    assert not np.array_equal(s1, sc.draw_subset(ids, 200, 2020))  # the master seed does
    np.testing.assert_array_equal(sc.draw_subset(ids[:50], 200, 2019), ids[:50])  # fewer than asked: all
    assert len(sc.draw_subset(ids, 0, 2019)) == 0
    with pytest.raises(ValueError, match="twice"):
        sc.draw_subset(np.r_[ids, ids[:1]], 10, 1)


def test_background_sigma_measures_the_noise_beside_the_galaxy():
    rng = np.random.default_rng(1)
    cube = rng.normal(3.0, 0.05, (3, 5, 64, 64))
    yy, xx = np.mgrid[0:64, 0:64]
    cube += 50 * np.exp(-0.5 * ((xx - 31.5) ** 2 + (yy - 31.5) ** 2) / 4.0**2)  # a bright galaxy in the middle
    cube[2, :, :, :40] = 0.0  # uncovered: left out
    cube[1, 3] = 0.0  # nothing covered: no sigma
    sig = sc.background_sigma(cube)
    assert np.isnan(sig[1, 3])
    ok = np.isfinite(sig)
    assert ok.sum() == 14 and np.allclose(sig[ok], 0.05, rtol=0.1)


def test_compare_cubes_in_units_of_the_noise():
    rng = np.random.default_rng(2)
    a = rng.normal(0, 1.0, (4, 5, 64, 64))
    a[:, :, 28:36, 28:36] += 100.0
    b = a + 0.5  # half a sigma everywhere
    res = sc.compare_cubes(a, b, np.ones((4, 5)))
    v = res["r"]
    assert v["median_abs_diff_sigma"] == pytest.approx(0.5) and v["p95_abs_diff_sigma"] == pytest.approx(0.5)
    assert v["n_flux_ratio"] == 4 and v["median_flux_ratio"] < 1  # b is brighter in the aperture
    s = np.ones((4, 5))
    s[0, 1] = np.nan
    assert sc.compare_cubes(a, a, s)["g"]["n_no_sigma"] == 1
    with pytest.raises(ValueError, match="shapes"):
        sc.compare_cubes(a, a[:2], s)


def test_config_refuses_the_check_when_the_frames_are_deleted():
    cfg = load_config(ROOT / "config.yaml")
    assert cfg["cutouts"]["swarp_check_galaxies"] > 0
    cfg["cutouts"]["resampler"] = "native"
    validate_config(cfg)
    cfg["tiles"]["delete_frames_after_cutouts"] = True
    with pytest.raises(ConfigError, match=r"cutouts\.swarp_check_galaxies.*tiles\.delete_frames_after_cutouts"):
        validate_config(cfg)
    cfg["cutouts"]["swarp_check_galaxies"] = 0
    validate_config(cfg)
    cfg["cutouts"]["swarp_check_galaxies"] = 200
    cfg["cutouts"]["resampler"] = "swarp"  # SWarp made the cubes: nothing to check
    validate_config(cfg)
    cfg["cutouts"]["swarp_check_galaxies"] = -1
    with pytest.raises(ConfigError, match="swarp_check_galaxies"):
        validate_config(cfg)


def _check_json(**over):
    bands = {b: {"n_galaxies": 190, "n_no_sigma": 0, "n_pixels": 190 * 4096, "median_abs_diff_sigma": 1.2e-4,
                 "p95_abs_diff_sigma": 0.004, "max_abs_diff_sigma": 0.05, "n_flux_ratio": 150,
                 "median_flux_ratio": 0.99998, "max_abs_ratio_minus_1": 1e-4, "median_sigma": 0.02} for b in BANDS}
    d = {"n_requested": 200, "n_pool": 23000, "n_drawn": 200, "n_compared": 190, "n_failed": 10, "bands": bands,
         "worst_median_abs_diff_sigma": 1.2e-4, "worst_p95_abs_diff_sigma": 0.004,
         "worst_abs_flux_ratio_minus_1": 2e-5, "agree_sigma": 0.1, "background_radius_pix": 24.0,
         "aperture_radius_pix": 8.0, "ratio_min_snr": 10.0}
    d.update(over)
    return d


def test_paper_sentence_follows_the_resampler_and_the_numbers(tmp_path):
    from photoz.wording import resampler_macros

    cfg = {"cutouts": {"resampler": "swarp", "pixel_scale": 0.396, "swarp_check_galaxies": 200}}
    m = resampler_macros({}, cfg)  # SWarp made the cubes: no file needed
    assert "made with SWarp" in m["ResamplerSentence"] and m["SwarpCheckNCompared"] == "--"
    cfg["cutouts"]["resampler"] = "native"
    with pytest.raises(ValueError, match="swarp_check"):
        resampler_macros({}, cfg)
    p = tmp_path / "swarp_check.json"
    p.write_text(json.dumps(_check_json()))
    m = resampler_macros({"swarp_check": p}, cfg)
    s = m["ResamplerSentence"]
    assert "native resampler" in s and "agree well within the noise" in s and "SWarp lost 10" in s
    assert m["SwarpCheckNCompared"] == "190" and m["SwarpCheckPninetyfiveSigma"] == "0.0040"
    assert m["SwarpCheckMedianSigma"] == "$1.2\\times10^{-4}$" and m["SwarpCheckFluxRatioPercent"] == "0.0020"
    p.write_text(json.dumps(_check_json(worst_p95_abs_diff_sigma=0.8)))
    s = resampler_macros({"swarp_check": p}, cfg)["ResamplerSentence"]
    assert "differ by more than 0.1 times the noise" in s and "agree" not in s
    p.write_text(json.dumps(_check_json(n_compared=0, n_failed=200)))
    assert "not checked" in resampler_macros({"swarp_check": p}, cfg)["ResamplerSentence"]
    cfg["cutouts"]["swarp_check_galaxies"] = 0
    assert "did not check" in resampler_macros({}, cfg)["ResamplerSentence"]


@pytest.mark.parametrize("resampler,n,scheduled", [("native", 200, True), ("native", 0, False), ("swarp", 200, False)])
def test_the_rule_is_scheduled_only_for_a_native_run_with_a_check(root, tmp_path, resampler, n, scheduled):
    import subprocess
    import sys

    snakemake = Path(sys.executable).with_name("snakemake")
    proc = subprocess.run([str(snakemake), "-s", str(root / "Snakefile"), "--directory", str(tmp_path), "-n", "-p",
                           "--config", f"cutouts={{resampler: {resampler}, swarp_check_galaxies: {n}}}"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = proc.stdout + proc.stderr
    rules = {line.split()[0] for line in out.splitlines() if len(line.split()) == 2 and line.split()[1].isdigit()}
    assert ("swarp_check" in rules) is scheduled
    assert ("--swarp_check results/cutouts/swarp_check.json" in out) is scheduled  # paper_variables reads it
