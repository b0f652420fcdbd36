"""Frame retrieval from a loopback SAS (HTTP) and a file:// tree, with injected faults."""

from __future__ import annotations

import bz2
import hashlib
import io
import json
import shutil

import numpy as np
import pandas as pd
import pytest
from astropy.io import fits

from photoz.sdss import sas
from photoz.sdss.sas import RetrievalError, frame_name, frame_url, retrieve_group, serve_sas, verify_frame

FIELDS = [(9001, 1, 11), (9001, 1, 12), (9101, 3, 11)]
BANDS = "ugriz"


def tiny_frame(seed, n_hdus=4):
    rng = np.random.default_rng(seed)
    hdus = [fits.PrimaryHDU(rng.normal(size=(24, 32)).astype("f4")),
            fits.ImageHDU(np.ones(32, "f4")),
            fits.BinTableHDU.from_columns([fits.Column("ALLSKY", "64E", array=rng.normal(size=(1, 64)))]),
            fits.BinTableHDU.from_columns([fits.Column("RA", "D", array=[1.0])])]
    buf = io.BytesIO()
    fits.HDUList(hdus[:n_hdus]).writeto(buf)
    return bz2.compress(buf.getvalue())


@pytest.fixture
def sas_tree(tmp_path):
    root = tmp_path / "sas"
    for i, (r, c, f) in enumerate(FIELDS):
        for j, b in enumerate(BANDS):
            p = root / "301" / str(r) / str(c) / frame_name(b, r, c, f)
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(tiny_frame(10 * i + j))
    return root


@pytest.fixture
def galaxies():
    return pd.DataFrame({"specObjID": [1, 2, 3, 4], "group": [0, 0, 1, 1],
                         "frames": [["9001-1-11", "9001-1-12"], ["9001-1-12"], ["9101-3-11"], []]})


def check_manifest(out, root, galaxies, group):
    man = json.loads((out / "MANIFEST.json").read_text())
    want = sorted(frame_name(b, *map(int, k.split("-"))) for lst in galaxies[galaxies.group == group].frames
                  for k in set(lst) for b in BANDS)
    want = sorted(set(want))
    names = [f["name"] for f in man["files"]]
    assert sorted(names) == want and len(names) == len(set(names))
    for f in man["files"]:
        src = root / "301" / str(f["run"]) / str(f["camcol"]) / f["name"]
        assert (out / f["name"]).read_bytes() == src.read_bytes()
        assert f["sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()
    assert not list(out.glob("*.part"))
    return man


def test_url_layout():
    assert frame_url("https://data.sdss.org/sas/dr12/boss/photoObj/frames/", 301, 2583, 2, 136, "r") == (
        "https://data.sdss.org/sas/dr12/boss/photoObj/frames/301/2583/2/frame-r-002583-2-0136.fits.bz2")


@pytest.mark.parametrize("fault", ["500", "429", "timeout", "reset", "short", "corrupt", "html"])
def test_every_fault_is_survived(sas_tree, galaxies, tmp_path, fault):
    target = frame_name("g", 9001, 1, 12)
    with serve_sas(sas_tree, faults={target: [fault, fault]}, fault_delay=1.5) as s:
        man = retrieve_group(galaxies, 0, s.url, 301, tmp_path / "out", parallel=3, timeout=0.5, max_retries=4,
                             backoff_base=0.001)
        hits = [r for r in s.requests if r[0].endswith(target)]
    assert [f for _, _, f in hits][:2] == [fault, fault]
    assert man["n_frames"] == 10 and man["n_galaxies"] == 2
    check_manifest(tmp_path / "out", sas_tree, galaxies, 0)


def test_reset_download_resumes_with_range(sas_tree, galaxies, tmp_path):
    target = frame_name("u", 9101, 3, 11)
    big = fits.HDUList([fits.PrimaryHDU(np.random.default_rng(5).normal(size=(300, 400)).astype("f4")),
                        *fits.open(io.BytesIO(bz2.decompress(tiny_frame(0))))[1:]])
    buf = io.BytesIO()
    big.writeto(buf)
    (sas_tree / "301" / "9101" / "3" / target).write_bytes(bz2.compress(buf.getvalue()))  # > 4 chunks of 64 KiB
    with serve_sas(sas_tree, faults={target: ["reset"]}) as s:
        retrieve_group(galaxies, 1, s.url, 301, tmp_path / "out", parallel=1, max_retries=3, backoff_base=0.001)
        ranges = [rng for p, rng, _ in s.requests if p.endswith(target)]
    assert ranges[0] is None and ranges[1] is not None and ranges[1].startswith("bytes=")
    check_manifest(tmp_path / "out", sas_tree, galaxies, 1)


def test_persistent_corruption_names_the_file_and_rerun_fetches_only_it(sas_tree, galaxies, tmp_path):
    target = frame_name("z", 9001, 1, 11)
    out = tmp_path / "out"
    with serve_sas(sas_tree, faults={target: ["corrupt"] * 10}) as s:
        with pytest.raises(RetrievalError, match=f"1 of 10 frames.*{target}.*bzip2"):
            retrieve_group(galaxies, 0, s.url, 301, out, parallel=2, max_retries=2, backoff_base=0.001)
    assert not (out / "MANIFEST.json").exists()
    assert len(list(out.glob("*.fits.bz2"))) == 9 and not (out / target).exists()
    with serve_sas(sas_tree) as s:
        retrieve_group(galaxies, 0, s.url, 301, out, parallel=2, backoff_base=0.001)
        fetched = [p for p, _, _ in s.requests]
    assert len(fetched) == 1 and fetched[0].endswith(target)
    check_manifest(out, sas_tree, galaxies, 0)


def test_missing_frame_is_reported_at_once(sas_tree, galaxies, tmp_path):
    (sas_tree / "301" / "9101" / "3" / frame_name("i", 9101, 3, 11)).unlink()
    with serve_sas(sas_tree) as s:
        with pytest.raises(RetrievalError, match="frame-i-009101-3-0011.fits.bz2.*404"):
            retrieve_group(galaxies, 1, s.url, 301, tmp_path / "out", max_retries=5, backoff_base=0.001)
        assert sum(p.endswith("frame-i-009101-3-0011.fits.bz2") for p, _, _ in s.requests) == 1


def test_file_url_and_cli_with_partial_directory(sas_tree, galaxies, tmp_path):
    gpath = tmp_path / "galaxies.parquet"
    galaxies.to_parquet(gpath)
    cfg = json.dumps({"rerun": 301, "sas_url": "https://unused.example", "parallel_downloads": 2})
    for g in (0, 1):
        out = tmp_path / "frames" / f"group-{g}"
        rc = sas.main(["--group", str(g), "--galaxies", str(gpath), "--sdss-json", cfg,
                       "--sas-url", f"file://{sas_tree}", "--out-dir", str(out)])
        assert rc == 0
        check_manifest(out, sas_tree, galaxies, g)
        assert not out.with_name(out.name + ".partial").exists()
    # an empty group still gets its (empty) output
    out = tmp_path / "frames" / "group-2"
    assert sas.main(["--group", "2", "--galaxies", str(gpath), "--sdss-json", cfg, "--sas-url",
                     f"file://{sas_tree}", "--out-dir", str(out)]) == 0
    assert json.loads((out / "MANIFEST.json").read_text())["files"] == []


def test_verify_frame_catches_every_kind_of_damage(tmp_path):
    good = tiny_frame(1)
    cases = {
        "truncated": good[: len(good) // 2],
        "garbage": good + b"\x00garbage",
        "corrupt": good[:100] + bytes(b ^ 0xFF for b in good[100:140]) + good[140:],
        "three_hdus": tiny_frame(1, n_hdus=3),
        "not_bz2": b"<html>error</html>",
    }
    p = tmp_path / "ok.fits.bz2"
    p.write_bytes(good)
    verify_frame(p)
    for name, data in cases.items():
        p = tmp_path / f"{name}.fits.bz2"
        p.write_bytes(data)
        with pytest.raises(sas.FrameError, match=f"{name}.fits.bz2"):
            verify_frame(p)


def test_real_frame_verifies_and_a_cut_copy_does_not(real_field, tmp_path):
    src = real_field / "frame-r-002583-2-0136.fits.bz2"
    verify_frame(src)
    cut = tmp_path / src.name
    shutil.copyfile(src, cut)
    with open(cut, "r+b") as fh:
        fh.truncate(cut.stat().st_size - 1000)
    with pytest.raises(sas.FrameError, match="truncated|corrupt"):
        verify_frame(cut)
