"""Frame retrieval from a loopback SAS (HTTP) and a file:// tree, with injected faults; resume and
request counts across failed runs; permanently bad frames listed, not fatal."""

from __future__ import annotations

import bz2
import hashlib
import io
import json
import os
import shutil

import numpy as np
import pandas as pd
import pytest
from astropy.io import fits

from photoz.sdss import sas
from photoz.sdss.sas import RetrievalError, frame_name, frame_url, retrieve_group, verify_frame
from photoz.sdss.sas_server import serve_sas

from synthetic_frames import sdss_section as _sdss

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
        man = retrieve_group(galaxies, 0, s.url, tmp_path / "out",
                             _sdss(301, parallel_downloads=3, timeout_s=0.5, max_retries=4), backoff_base=0.001)
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
        retrieve_group(galaxies, 1, s.url, tmp_path / "out", _sdss(301, parallel_downloads=1, max_retries=3),
                       backoff_base=0.001)
        ranges = [rng for p, rng, _ in s.requests if p.endswith(target)]
    assert ranges[0] is None and ranges[1] is not None and ranges[1].startswith("bytes=")
    check_manifest(tmp_path / "out", sas_tree, galaxies, 1)


def test_persistent_corruption_is_listed_unavailable_not_fatal(sas_tree, galaxies, tmp_path):
    target = frame_name("z", 9001, 1, 11)
    out = tmp_path / "out"
    with serve_sas(sas_tree, faults={target: ["corrupt"] * 10}) as s:
        man = retrieve_group(galaxies, 0, s.url, out, _sdss(301, parallel_downloads=2, max_retries=2),
                             backoff_base=0.001)
        assert sum(p.endswith(target) for p, _, _ in s.requests) == 3  # retried, then given up
    assert [u["name"] for u in man["unavailable"]] == [target]
    assert "bzip2" in man["unavailable"][0]["reason"] and target in man["unavailable"][0]["reason"]
    assert man["n_frames"] == 9 and not (out / target).exists()
    assert not list(out.glob("*.part"))


def test_failed_retrieval_keeps_verified_frames_and_rerun_fetches_only_the_missing(sas_tree, galaxies, tmp_path):
    """A transient failure that outlasts the retries fails the group; the rerun requests only that frame."""
    target = frame_name("r", 9001, 1, 12)
    out = tmp_path / "out"
    with serve_sas(sas_tree, faults={target: ["500"] * 3}) as s:
        with pytest.raises(RetrievalError, match=f"1 of 10 frames.*{target}.*HTTP 500"):
            retrieve_group(galaxies, 0, s.url, out, _sdss(301, parallel_downloads=2, max_retries=2),
                           backoff_base=0.001)
        assert len(s.requests) == 9 + 3
    assert not (out / "MANIFEST.json").exists()
    assert len(list(out.glob("*.fits.bz2"))) == 9 and not (out / target).exists()
    with serve_sas(sas_tree) as s:
        retrieve_group(galaxies, 0, s.url, out, _sdss(301, parallel_downloads=2), backoff_base=0.001)
        fetched = [p for p, _, _ in s.requests]
    assert len(fetched) == 1 and fetched[0].endswith(target)
    check_manifest(out, sas_tree, galaxies, 0)
    # a third run (e.g. Snakemake rerunning the job) fetches nothing
    with serve_sas(sas_tree) as s:
        retrieve_group(galaxies, 0, s.url, out, _sdss(301, parallel_downloads=2), backoff_base=0.001)
        assert s.requests == []
    check_manifest(out, sas_tree, galaxies, 0)


def test_missing_frame_is_listed_after_one_request(sas_tree, galaxies, tmp_path):
    name = frame_name("i", 9101, 3, 11)
    (sas_tree / "301" / "9101" / "3" / name).unlink()
    with serve_sas(sas_tree) as s:
        man = retrieve_group(galaxies, 1, s.url, tmp_path / "out", _sdss(301, max_retries=5), backoff_base=0.001)
        assert sum(p.endswith(name) for p, _, _ in s.requests) == 1
    assert [(u["name"], "404" in u["reason"]) for u in man["unavailable"]] == [(name, True)]
    assert man["n_frames"] == 4


def test_local_source_is_not_retried(sas_tree, galaxies, tmp_path, monkeypatch):
    name = frame_name("g", 9001, 1, 11)
    src = sas_tree / "301" / "9001" / "1" / name
    src.write_bytes(src.read_bytes()[:-50])  # corrupt at the source
    (sas_tree / "301" / "9001" / "1" / frame_name("u", 9001, 1, 12)).unlink()  # missing at the source
    sleeps = []
    monkeypatch.setattr(sas.time, "sleep", lambda s: sleeps.append(s))
    man = retrieve_group(galaxies, 0, f"file://{sas_tree}", tmp_path / "out", _sdss(301, max_retries=6),
                         backoff_base=30.0)
    assert sleeps == []
    assert sorted(u["name"] for u in man["unavailable"]) == sorted([name, frame_name("u", 9001, 1, 12)])


def test_local_frames_are_copies_not_hard_links(sas_tree, galaxies, tmp_path):
    """Damage done in place to one group's frame reaches neither the SAS tree nor another group."""
    a = retrieve_group(galaxies, 0, f"file://{sas_tree}", tmp_path / "a", _sdss(301))
    retrieve_group(galaxies, 0, f"file://{sas_tree}", tmp_path / "b", _sdss(301))
    name = a["files"][0]["name"]
    f = a["files"][0]
    src = sas_tree / "301" / str(f["run"]) / str(f["camcol"]) / name
    before = src.read_bytes()
    with open(tmp_path / "a" / name, "r+b") as fh:  # in-place corruption of group a's copy
        fh.seek(100)
        fh.write(b"\x00" * 64)
    assert src.read_bytes() == before
    assert (tmp_path / "b" / name).read_bytes() == before
    assert os.stat(src).st_nlink == 1 and os.stat(tmp_path / "a" / name).st_nlink == 1


def test_file_url_and_cli(sas_tree, galaxies, tmp_path):
    gpath = tmp_path / "galaxies.parquet"
    galaxies.to_parquet(gpath)
    cfg = json.dumps(_sdss(301, parallel_downloads=2))
    for g in (0, 1):
        out = tmp_path / "frames" / f"group-{g}"
        rc = sas.main(["--group", str(g), "--galaxies", str(gpath), "--sdss-json", cfg,
                       "--sas-url", f"file://{sas_tree}", "--manifest", str(out / "MANIFEST.json")])
        assert rc == 0
        check_manifest(out, sas_tree, galaxies, g)
    # a frame the group no longer needs (an earlier frame index) is removed by the rerun
    stale = tmp_path / "frames" / "group-1" / frame_name("u", 9001, 1, 11)
    stale.write_bytes(b"old")
    assert sas.main(["--group", "1", "--galaxies", str(gpath), "--sdss-json", cfg, "--sas-url",
                     f"file://{sas_tree}", "--manifest", str(tmp_path / "frames" / "group-1" / "MANIFEST.json")]) == 0
    assert not stale.exists()
    # an empty group still gets its (empty) output
    out = tmp_path / "frames" / "group-2"
    assert sas.main(["--group", "2", "--galaxies", str(gpath), "--sdss-json", cfg, "--sas-url",
                     f"file://{sas_tree}", "--manifest", str(out / "MANIFEST.json")]) == 0
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


# --- the archive down or refusing us is never recorded as a frame "unavailable" (issue 29) -------
def test_persistent_maintenance_page_fails_the_group_naming_the_url(sas_tree, galaxies, tmp_path):
    """A status-200 HTML page in place of a frame is retried; if it persists the group fails, naming the URL."""
    target = frame_name("g", 9001, 1, 12)
    out = tmp_path / "out"
    with serve_sas(sas_tree, faults={target: ["html"] * 10}) as s:
        with pytest.raises(RetrievalError) as err:
            retrieve_group(galaxies, 0, s.url, out, _sdss(301, parallel_downloads=2, max_retries=3),
                           backoff_base=0.001)
        assert sum(p.endswith(target) for p, _, _ in s.requests) == 4  # retried, as a server problem
        url = frame_url(s.url, 301, 9001, 1, 12, "g")
    msg = str(err.value)
    assert url in msg and "HTML page instead of a frame" in msg and "Scheduled Maintenance" in msg
    assert "nothing is recorded unavailable" in msg
    assert not (out / "MANIFEST.json").exists() and not (out / target).exists()
    assert len(list(out.glob("*.fits.bz2"))) == 9 and not list(out.glob("*.part"))


def test_refusal_fails_at_once_quoting_the_status(sas_tree, galaxies, tmp_path):
    target = frame_name("r", 9101, 3, 11)
    with serve_sas(sas_tree, faults={target: ["403"] * 10}) as s:
        with pytest.raises(RetrievalError, match=r"refused.*HTTP 403 Forbidden.*permission") as err:
            retrieve_group(galaxies, 1, s.url, tmp_path / "out", _sdss(301, parallel_downloads=1, max_retries=5),
                           backoff_base=0.001)
        assert sum(p.endswith(target) for p, _, _ in s.requests) == 1  # never retried
    assert frame_url(s.url, 301, 9101, 3, 11, "r") in str(err.value)
    assert not (tmp_path / "out" / "MANIFEST.json").exists()


def test_a_group_where_every_frame_is_404_fails_instead_of_recording_them(sas_tree, galaxies, tmp_path):
    """A wrong sas_url (or an archive answering 404 for everything) is not 10 absent frames."""
    with serve_sas(sas_tree) as s:
        with pytest.raises(RetrievalError, match=r"every one of its 10 frames answered HTTP 404.*sdss.sas_url"):
            retrieve_group(galaxies, 0, s.url + "/wrong/path", tmp_path / "out", _sdss(301, max_retries=3),
                           backoff_base=0.001)
        assert len(s.requests) == 10  # a 404 is not retried
    assert not (tmp_path / "out" / "MANIFEST.json").exists()


@pytest.mark.parametrize("parallel", [1, 3])
def test_a_job_holds_at_most_parallel_downloads_connections(sas_tree, galaxies, tmp_path, parallel):
    """What the rule declares as its `sas` resource (sdss.parallel_downloads) is what it opens, at most."""
    with serve_sas(sas_tree, delay=0.15) as s:
        retrieve_group(galaxies, 0, s.url, tmp_path / "out", _sdss(301, parallel_downloads=parallel),
                       backoff_base=0.001)
        assert len(s.requests) == 10
        assert s.max_active == parallel  # reached (the requests overlap), never exceeded


@pytest.mark.parametrize("threads", [1, 2])
def test_verifications_run_at_most_threads_at_once(sas_tree, galaxies, tmp_path, monkeypatch, threads):
    """Downloads run parallel_downloads at a time; their CPU-bound verifications at most `threads` at once."""
    import threading
    import time

    lock, now, peak = threading.Lock(), [0], [0]
    real = sas.verify_frame

    def counting(path, *a, **kw):
        with lock:
            now[0] += 1
            peak[0] = max(peak[0], now[0])
        try:
            time.sleep(0.05)  # long enough for the other download threads to arrive
            return real(path, *a, **kw)
        finally:
            with lock:
                now[0] -= 1

    monkeypatch.setattr(sas, "verify_frame", counting)
    man = retrieve_group(galaxies, 0, f"file://{sas_tree}", tmp_path / "out", _sdss(301, parallel_downloads=4),
                         threads=threads)
    check_manifest(tmp_path / "out", sas_tree, galaxies, 0)
    assert len(man["files"]) == 10 and peak[0] == threads
