"""Frame index: overlap queries against brute force, epochs, Stripe 82, tiles and groups."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from test_query_fixtures import make_skyserver_db

from photoz import frame_index as fx
from synthetic_frames import sdss_section
from photoz.frame_index import FrameIndex, assign_groups, frames_table, galaxy_index, in_box

S82 = {"ra_min": -60.0, "ra_max": 60.0, "dec_min": -1.26, "dec_max": 1.26}
HALF = 64 * 0.396 / 3600 / 2


def rotated_frames(n, rng, ra_range=(0, 360), dec_range=(-80, 80)):
    """Frames as rotated rectangles (SDSS size) in the tangent plane of random centres."""
    ra_c = rng.uniform(*ra_range, n)
    dec_c = rng.uniform(*dec_range, n)
    ang = rng.uniform(0, np.pi, n)
    hw, hh = 2048 * 0.396 / 3600 / 2, 1489 * 0.396 / 3600 / 2
    rows = {"ra_c": ra_c % 360, "dec_c": dec_c}
    for k, (sx, sy) in enumerate([(-1, -1), (1, -1), (1, 1), (-1, 1)]):
        x = np.radians(sx * hw * np.cos(ang) - sy * hh * np.sin(ang))
        y = np.radians(sx * hw * np.sin(ang) + sy * hh * np.cos(ang))
        # inverse gnomonic
        d0, a0 = np.radians(dec_c), np.radians(ra_c)
        rho = np.hypot(x, y)
        c = np.arctan(rho)
        dec = np.arcsin(np.cos(c) * np.sin(d0) + np.where(rho > 0, y * np.sin(c) * np.cos(d0) / rho, 0))
        ra = a0 + np.arctan2(x * np.sin(c), rho * np.cos(d0) * np.cos(c) - y * np.sin(d0) * np.sin(c))
        rows[f"ra_{k}"] = np.degrees(ra) % 360
        rows[f"dec_{k}"] = np.degrees(dec)
    return pd.DataFrame(rows)


def _seg_intersect(p1, p2, q1, q2):
    def orient(a, b, c):
        return np.sign((b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0]))
    return orient(p1, p2, q1) != orient(p1, p2, q2) and orient(q1, q2, p1) != orient(q1, q2, p2)


def _inside(pt, poly):
    s = [np.sign((poly[(i + 1) % 4][0] - poly[i][0]) * (pt[1] - poly[i][1])
                 - (poly[(i + 1) % 4][1] - poly[i][1]) * (pt[0] - poly[i][0])) for i in range(4)]
    return all(v >= 0 for v in s) or all(v <= 0 for v in s)


def brute_overlap(ra, dec, frames, half):
    """All (galaxy, frame) pairs by explicit polygon tests, one by one."""
    sq = [(-half, -half), (half, -half), (half, half), (-half, half)]
    cra = frames[[f"ra_{k}" for k in range(4)]].to_numpy(float)
    cdec = frames[[f"dec_{k}" for k in range(4)]].to_numpy(float)
    pairs = set()
    for g in range(len(ra)):
        for f in range(len(frames)):
            x, y, cosc = fx._gnomonic(ra[g], dec[g], cra[f], cdec[f])
            if np.any(cosc <= 0.9) or np.hypot(x, y).min() > 1:  # far away: cannot overlap
                continue
            quad = list(zip(x, y))
            hit = any(_inside(p, quad) for p in sq) or any(_inside(p, sq) for p in quad) or any(
                _seg_intersect(quad[i], quad[(i + 1) % 4], sq[j], sq[(j + 1) % 4]) for i in range(4) for j in range(4))
            if hit:
                pairs.add((g, f))
    return pairs


def test_overlap_matches_brute_force_including_wrap_and_high_dec():
    rng = np.random.default_rng(3)
    frames = pd.concat([rotated_frames(25, rng, (359.5, 360.5), (-0.3, 0.3)),   # through RA = 0
                        rotated_frames(25, rng, (100, 101), (84.6, 85.2))],      # near the pole
                       ignore_index=True)
    ra = np.concatenate([rng.uniform(359.4, 360.6, 300) % 360, rng.uniform(99, 102, 300)])
    dec = np.concatenate([rng.uniform(-0.45, 0.45, 300), rng.uniform(84.4, 85.4, 300)])
    half = 0.02  # larger than a real cutout, to exercise corner cases
    gi, fi = FrameIndex(frames).overlapping(ra, dec, half)
    got = set(zip(gi.tolist(), fi.tolist()))
    want = brute_overlap(ra, dec, frames, half)
    assert len(want) > 200
    assert got == want


def test_containing_and_epochs_and_stripe82(tmp_path):
    db = tmp_path / "db.sqlite"
    make_skyserver_db(db, 5)
    import sqlite3

    fields = pd.read_sql("SELECT * FROM Field", sqlite3.connect(db))
    frames = frames_table(fields, S82)
    assert frames["stripe82"].sum() == 18  # the three runs at dec 0, RA 20
    cat = pd.DataFrame({"specObjID": [1, 2, 3, 4], "ra": [150.0, 20.3, 20.3, 200.0],
                        "dec": [30.0, 0.0, 0.10, 10.0]})
    t = galaxy_index(cat, frames, 64, 3, 64, 0.396).to_pandas()
    assert t["n_epochs"].tolist() == [1, 3, 3, 0]
    assert t["stripe82"].tolist() == [False, True, True, False]
    assert list(t["frames"][3]) == []
    # a galaxy on the overlap of two consecutive fields of one run sees both, one epoch
    t2 = galaxy_index(pd.DataFrame({"specObjID": [9], "ra": [150.0747], "dec": [30.0]}), frames, 64, 1, 64, 0.396).to_pandas()
    assert set(t2["frames"][0]) == {"9001-1-11", "9001-1-12"} and t2["n_epochs"][0] == 1


def test_frames_table_wraps_and_rejects_bad_footprints():
    base = {"run": 1, "rerun": 301, "camcol": 1, "field": 1, "mjd_r": 5e4, "ra": 0.05, "dec": 0.0,
            "raMin": 359.9, "raMax": 0.2, "decMin": -0.1, "decMax": 0.1}
    base.update({f"{q}_{b}": 1.0 for q in fx.FIELD_PER_BAND for b in "ugriz"})
    fr = frames_table(pd.DataFrame([base]), S82)
    assert fr["ra_0"][0] == pytest.approx(359.9) and fr["ra_1"][0] == pytest.approx(0.2)
    gi, _ = FrameIndex(fr).overlapping(np.array([0.0, 359.95, 1.0]), np.array([0.0, 0.0, 0.0]), HALF)
    assert gi.tolist() == [0, 1]
    with pytest.raises(ValueError, match="run=1 camcol=1 field=1 has an invalid footprint"):
        frames_table(pd.DataFrame([{**base, "decMax": -0.2}]), S82)
    with pytest.raises(ValueError, match="lacks columns"):
        frames_table(pd.DataFrame([base]).drop(columns=["sky_g"]), S82)


def test_groups_are_static_balanced_and_keep_tiles_whole():
    rng = np.random.default_rng(0)
    tiles = rng.integers(0, 50, 5000)
    g = assign_groups(tiles, 7)
    assert g.min() >= 0 and g.max() <= 6
    for t in np.unique(tiles):
        assert len(np.unique(g[tiles == t])) == 1
    counts = np.bincount(g, minlength=7)
    assert counts.max() < 2.5 * counts.mean()
    order = np.argsort(tiles, kind="stable")
    assert np.all(np.diff(g[order]) >= 0)  # contiguous runs of tiles in nested order
    assert np.array_equal(g, assign_groups(tiles, 7))
    few = assign_groups(np.array([3, 3, 9]), 5)  # fewer tiles than groups: some groups empty
    assert set(few.tolist()) <= set(range(5))


def test_in_box_wraps():
    assert in_box([359.0, 1.0, 61.0, 300.0], [0, 0, 0, 0], S82).tolist() == [True, True, False, True]


def test_frame_index_command_with_mock_skyserver(tmp_path):
    db = tmp_path / "db.sqlite"
    make_skyserver_db(db, 30)
    cat = tmp_path / "cat.parquet"
    from photoz.sdss.skyserver import SkyServerClient, run_catalog_query
    from photoz.sdss.skyserver_server import serve_sqlite

    with serve_sqlite(db) as s:
        run_catalog_query(SkyServerClient(s.url, 12, timeout=120, max_retries=6, max_requests_per_minute=1e6),
                          {"r_max": 17.8, "z_min": 0.0, "z_max": 0.4}, tmp_path / "p", 100, cat)
    sdss = sdss_section(301, skyserver_url="https://skyserver.sdss.org", page_size=7, max_requests_per_minute=60000)
    rc = fx.main(["--sdss-json", json.dumps(sdss), "--nside", "64", "--n-groups", "4", "--size", "64", "--pixel-scale", "0.396",
                  "--stripe82-json", json.dumps(S82), "--catalog", str(cat), "--mock-db", str(db),
                  "--pages", str(tmp_path / "fp"), "--frames-out", str(tmp_path / "frames.parquet"),
                  "--galaxies-out", str(tmp_path / "gal.parquet")])
    assert rc == 0
    gal = pd.read_parquet(tmp_path / "gal.parquet")
    frames = pd.read_parquet(tmp_path / "frames.parquet")
    assert len(frames) == 24 and len(gal) == 30
    assert gal["group"].between(0, 3).all() and (gal["n_epochs"] >= 1).all()
    keys = {f"{r}-{c}-{f}" for r, c, f in zip(frames.run, frames.camcol, frames.field)}
    assert all(set(lst) <= keys and len(lst) > 0 for lst in gal["frames"])
    assert (gal["stripe82"] == (gal["n_epochs"] >= 2)).all()  # the S82 runs overlap, run 9001 is alone
