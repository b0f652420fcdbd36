"""Faults between retrieval and cutouts: a missing or broken SWarp, frames damaged after retrieval
(sha256 against the manifest), frames unavailable at the source, the bad_frame policy, stamp folders
of killed jobs, and the per-group losses summary."""

from __future__ import annotations

import bz2
import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from astropy.io import fits

from photoz.cutouts import group as cg
from synthetic_frames import cutouts_section, sdss_section, synthetic_frame
from photoz.sdss.frames import BANDS
from photoz.sdss.sas import frame_name, retrieve_group

ROOT = Path(__file__).resolve().parents[1]
needs_swarp = pytest.mark.skipif(not any(os.access(Path(d) / n, os.X_OK) for d in os.environ["PATH"].split(":")
                                         for n in ("SWarp", "swarp")), reason="SWarp binary not installed")
FIELDS = [(9001, 1, 11), (9002, 1, 11)]  # two epochs of the same field


def _sas_frame(path, ra, dec, band, run, seed):
    """A synthetic frame with the 4 HDUs of an SDSS frame, bz2-compressed, at ``path``."""
    tmp = path.with_suffix("")  # .fits
    synthetic_frame(tmp, ra, dec, band=band, run=run, shape=(200, 220),
                    sources=[(150.0, 30.0, 50.0, 1.2), (150.003, 29.999, 20.0, 2.0)], noise=0.05, seed=seed)
    with fits.open(tmp) as h:
        hdus = fits.HDUList([h[0].copy(), h[1].copy(), h[2].copy(),
                             fits.BinTableHDU.from_columns([fits.Column("RA", "D", array=[ra])])])
        buf = io.BytesIO()
        hdus.writeto(buf)
    tmp.unlink()
    path.write_bytes(bz2.compress(buf.getvalue(), 1))


@pytest.fixture
def setup(tmp_path):
    """A SAS tree with two epochs of one field, and a group of 3 galaxies needing both epochs."""
    sas = tmp_path / "sas"
    for e, (r, c, f) in enumerate(FIELDS):
        for b, band in enumerate(BANDS):
            p = sas / "301" / str(r) / str(c) / frame_name(band, r, c, f)
            p.parent.mkdir(parents=True, exist_ok=True)
            _sas_frame(p, 150.0 + 1e-4 * e, 30.0, band, r, 10 * e + b)
    keys = [f"{r}-{c}-{f}" for r, c, f in FIELDS]
    ids = [11, 12, 13]
    pos = [(150.0, 30.0), (150.003, 29.999), (149.998, 30.002)]
    gal = pd.DataFrame({"specObjID": np.array(ids, np.int64), "group": 0, "frames": [keys] * 3,
                        "n_epochs": 2, "stripe82": True})
    gal.to_parquet(tmp_path / "galaxies.parquet")
    pd.DataFrame({"specObjID": np.array(ids, np.int64), "ra": [p[0] for p in pos],
                  "dec": [p[1] for p in pos]}).to_parquet(tmp_path / "catalog.parquet")
    return tmp_path, sas, gal


def _retrieve(tmp_path, sas, gal):
    out = tmp_path / "frames" / "group-0"
    retrieve_group(gal, 0, f"file://{sas}", out, sdss_section(301))
    return out / "MANIFEST.json"


def _cutouts(tmp_path, manifest, resampler="native", extra=(), **cfg):
    conf = cutouts_section(resampler=resampler, **cfg)
    out = Path(os.path.relpath(tmp_path / "cutouts"))  # relative, as the rules give them
    args = ["--group", "0", "--manifest", str(manifest), "--galaxies", str(tmp_path / "galaxies.parquet"),
            "--catalog", str(tmp_path / "catalog.parquet"), "--config-json", json.dumps(conf),
            "--out", str(out / "group-0.npz"), "--failures", str(out / "group-0-failures.csv"),
            "--losses", str(out / "group-0-losses.json"), *extra]
    return cg.main(args), out


def _read(out):
    with np.load(out / "group-0.npz") as z:
        ids = list(z["specObjID"])
        nframes = z["nframes"].copy()
    return ids, nframes, pd.read_csv(out / "group-0-failures.csv"), json.loads((out / "group-0-losses.json").read_text())


@pytest.mark.parametrize("how", ["missing", "broken"])
def test_missing_or_broken_swarp_fails_before_any_galaxy_and_writes_nothing(setup, tmp_path, how, capsys):
    tmp_path, sas, gal = setup
    manifest = _retrieve(tmp_path, sas, gal)
    if how == "missing":
        binary = "no-such-swarp-binary"
    else:
        binary = tmp_path / "SWarp"
        binary.write_text("#!/bin/sh\necho 'error while loading shared libraries: libfftw3f.so.3' >&2\nexit 127\n")
        binary.chmod(0o755)
    rc, out = _cutouts(tmp_path, manifest, resampler="swarp", swarp_binary=str(binary))
    assert rc == 1
    err = capsys.readouterr().err
    assert "SWarp" in err and "`swarp`" in err and "astromatic-swarp" in err
    assert not out.exists() or list(out.iterdir()) == []


def test_frame_damaged_after_retrieval_fails_its_galaxies_by_sha256(setup):
    tmp_path, sas, gal = setup
    manifest = _retrieve(tmp_path, sas, gal)
    rc, out = _cutouts(tmp_path, manifest)
    assert rc == 0
    ids, _, fails, losses = _read(out)
    assert ids == [11, 12, 13] and fails.empty and losses["n_lost"] == 0
    # damage one frame in place, keeping it a valid frame: only the checksum can tell
    victim = manifest.parent / frame_name("r", 9002, 1, 11)
    with fits.open(io.BytesIO(bz2.decompress(victim.read_bytes()))) as h:
        h[0].data[:] += 1.0
        buf = io.BytesIO()
        h.writeto(buf)
    victim.write_bytes(bz2.compress(buf.getvalue(), 1))
    rc, out = _cutouts(tmp_path, manifest)
    assert rc == 0
    ids, _, fails, losses = _read(out)
    assert ids == []
    assert set(fails.specObjID) == {11, 12, 13} and (fails.band == "r").all()
    assert fails.reason.str.contains("sha256 differs").all() and fails.reason.str.contains(victim.name).all()
    assert losses["lost_by_reason"]["frame_corrupt"] == 3
    assert [f["frame"] for f in losses["bad_frames"]] == ["r 9002-1-11"]


@pytest.mark.parametrize("policy", ["drop_galaxy", "skip_frame"])
def test_frame_unavailable_at_the_source_and_the_bad_frame_policy(setup, policy):
    tmp_path, sas, gal = setup
    lost = frame_name("g", 9001, 1, 11)
    (sas / "301" / "9001" / "1" / lost).unlink()
    manifest = _retrieve(tmp_path, sas, gal)
    man = json.loads(manifest.read_text())
    assert [u["name"] for u in man["unavailable"]] == [lost]
    rc, out = _cutouts(tmp_path, manifest, bad_frame=policy)
    assert rc == 0
    ids, nframes, fails, losses = _read(out)
    if policy == "drop_galaxy":
        assert ids == [] and set(fails.specObjID) == {11, 12, 13}
        assert fails.reason.str.contains("unavailable at retrieval").all()
        assert losses["lost_by_reason"]["frame_unavailable"] == 3 and losses["n_degraded"] == 0
    else:  # kept with the other epoch in g, both epochs elsewhere
        assert ids == [11, 12, 13] and fails.empty
        assert (nframes[:, BANDS.index("g")] == 1).all() and (np.delete(nframes, BANDS.index("g"), 1) == 2).all()
        assert losses["n_lost"] == 0 and losses["n_degraded"] == 3
    assert losses["bad_frames"][0]["code"] == "frame_unavailable"


def test_skip_frame_still_fails_a_band_left_without_frames(setup):
    tmp_path, sas, gal = setup
    for r in (9001, 9002):
        (sas / "301" / str(r) / "1" / frame_name("z", r, 1, 11)).unlink()
    manifest = _retrieve(tmp_path, sas, gal)
    rc, out = _cutouts(tmp_path, manifest, bad_frame="skip_frame")
    ids, _, fails, losses = _read(out)
    assert ids == [] and (fails.band == "z").all() and fails.reason.str.contains("no usable frame").all()
    assert losses["lost_by_reason"]["frame_unavailable"] == 3


def test_delete_frames_after_cutouts(setup):
    tmp_path, sas, gal = setup
    manifest = _retrieve(tmp_path, sas, gal)
    rc, out = _cutouts(tmp_path, manifest, extra=["--delete-frames"])
    assert rc == 0 and (out / "group-0.npz").exists()
    assert not list(manifest.parent.glob("frame-*"))


@needs_swarp
def test_stamps_live_beside_the_output_and_those_of_a_killed_run_are_cleared(setup, monkeypatch):
    tmp_path, sas, gal = setup
    manifest = _retrieve(tmp_path, sas, gal)
    systmp = tmp_path / "systmp"
    systmp.mkdir()
    monkeypatch.setattr("tempfile.tempdir", str(systmp))
    stale = tmp_path / "cutouts" / ".group-0.stamps" / "stamps-x"
    stale.mkdir(parents=True)  # what a killed job leaves
    (stale / "1-r-9001-1-11.fits").write_bytes(b"x" * 100)
    rc, out = _cutouts(tmp_path, manifest, resampler="swarp")
    assert rc == 0 and len(_read(out)[0]) == 3
    assert not (out / ".group-0.stamps").exists()
    assert list(systmp.iterdir()) == []


@needs_swarp
def test_sigterm_removes_the_stamps(setup):
    """Snakemake stops jobs with SIGTERM: the job unwinds and removes its stamp folder."""
    tmp_path, sas, gal = setup
    manifest = _retrieve(tmp_path, sas, gal)
    # a slow "SWarp" so the job is surely inside the resampling when the signal comes
    slow = tmp_path / "bin" / "SWarp"
    slow.parent.mkdir()
    slow.write_text("#!/bin/sh\ncase \"$1\" in -v) echo 'SWarp version 2.41.5';; *) exec sleep 30;; esac\n")
    slow.chmod(0o755)
    conf = cutouts_section(resampler="swarp", swarp_binary=str(slow))
    out = tmp_path / "cutouts"
    cmd = [sys.executable, "-m", "photoz", "cutouts", "--group", "0", "--manifest", str(manifest),
           "--galaxies", str(tmp_path / "galaxies.parquet"), "--catalog", str(tmp_path / "catalog.parquet"),
           "--config-json", json.dumps(conf), "--out", str(out / "group-0.npz"),
           "--failures", str(out / "group-0-failures.csv"), "--losses", str(out / "group-0-losses.json")]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)
    stamps = out / ".group-0.stamps"
    t0 = time.time()
    while not list(stamps.rglob("*.fits")) and time.time() - t0 < 60:
        time.sleep(0.05)
    assert list(stamps.rglob("*.fits")), "the job never wrote a stamp"
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    assert proc.returncode != 0
    assert not stamps.exists() and not (out / "group-0.npz").exists()
