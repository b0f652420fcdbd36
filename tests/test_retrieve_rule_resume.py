"""The `retrieve` rule under Snakemake: a failed job keeps its verified frames, and neither the rerun
nor a forced rerun fetches a verified frame again (requests counted on the loopback SAS)."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest
import yaml

from photoz.sdss.sas import frame_name
from photoz.sdss.sas_server import serve_sas

from test_sas_retrieve import BANDS, FIELDS, tiny_frame


def _snakemake(root, work, configfile, *args):
    return subprocess.run([sys.executable, "-m", "snakemake", "-s", str(root / "Snakefile"), "--directory", str(work),
                           "--configfile", str(configfile), "-c1", "--nolock",
                           "results/frames/group-0/MANIFEST.json", *args],
                          capture_output=True, text=True, timeout=600)


@pytest.mark.timeout(900)
def test_failed_retrieve_job_keeps_frames_and_reruns_fetch_only_the_missing(root, tmp_path):
    sas = tmp_path / "sas"
    for i, (r, c, f) in enumerate(FIELDS):
        for j, b in enumerate(BANDS):
            p = sas / "301" / str(r) / str(c) / frame_name(b, r, c, f)
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(tiny_frame(10 * i + j))
    work = tmp_path / "work"
    (work / "results" / "frames").mkdir(parents=True)
    pd.DataFrame({"specObjID": [1, 2], "group": [0, 0], "n_epochs": [1, 1], "stripe82": [False, False],
                  "frames": [["9001-1-11", "9001-1-12"], ["9001-1-12"]]}).to_parquet(
        work / "results" / "frames" / "galaxies.parquet")
    target = frame_name("i", 9001, 1, 12)
    frames_dir = work / "results" / "frames" / "group-0"
    with serve_sas(sas, faults={target: ["500", "500"]}) as s:
        cfg = tmp_path / "cfg.yaml"
        cfg.write_text(yaml.safe_dump({"mode": "sdss", "sdss": {"sas_url": s.url, "max_retries": 1,
                                                                  "parallel_downloads": 2}}))
        first = _snakemake(root, work, cfg)
        assert first.returncode != 0, first.stderr[-3000:]
        assert len(s.requests) == 9 + 2
        assert not (frames_dir / "MANIFEST.json").exists()
        assert len(list(frames_dir.glob("frame-*.fits.bz2"))) == 9  # Snakemake did not delete them
        s.requests.clear()
        second = _snakemake(root, work, cfg)
        assert second.returncode == 0, second.stderr[-3000:]
        assert [p for p, _, _ in s.requests] == [f"301/9001/1/{target}"]
        s.requests.clear()
        third = _snakemake(root, work, cfg, "--forcerun", "retrieve")
        assert third.returncode == 0, third.stderr[-3000:]
        assert s.requests == []
    assert len(list(frames_dir.glob("frame-*.fits.bz2"))) == 10 and (frames_dir / "MANIFEST.json").exists()


@pytest.mark.timeout(900)
def test_the_sas_cap_bounds_the_connections_of_all_retrieve_jobs(root, tmp_path):
    """Each retrieve job holds sdss.parallel_downloads connections as its resource `sas`; the cap on `sas`
    (profiles' resources:, here --resources) bounds what the SAS sees from all jobs together (issue 29)."""
    sas = tmp_path / "sas"
    for i, (r, c, f) in enumerate(FIELDS):
        for j, b in enumerate(BANDS):
            p = sas / "301" / str(r) / str(c) / frame_name(b, r, c, f)
            p.parent.mkdir(parents=True, exist_ok=True)
            p.write_bytes(tiny_frame(10 * i + j))
    keys = ["-".join(map(str, k)) for k in FIELDS]
    galaxies = pd.DataFrame({"specObjID": [1, 2, 3, 4], "group": [0, 1, 2, 3], "n_epochs": 1, "stripe82": False,
                             "frames": [keys[:2], keys[1:2], keys[2:], [keys[0], keys[2]]]})
    targets = [f"results/frames/group-{g}/MANIFEST.json" for g in range(4)]

    def run(name, cap):
        work = tmp_path / name
        (work / "results" / "frames").mkdir(parents=True)
        galaxies.to_parquet(work / "results" / "frames" / "galaxies.parquet")
        with serve_sas(sas, delay=1.0) as s:
            cfg = tmp_path / f"{name}.yaml"
            cfg.write_text(yaml.safe_dump({"mode": "sdss", "tiles": {"n_groups": 4},
                                           "sdss": {"sas_url": s.url, "parallel_downloads": 2}}))
            res = subprocess.run([sys.executable, "-m", "snakemake", "-s", str(root / "Snakefile"), "--directory",
                                  str(work), *targets, "--configfile", str(cfg), "-c4", "--nolock",
                                  "--resources", f"sas={cap}"], capture_output=True, text=True, timeout=600)
            assert res.returncode == 0, res.stderr[-3000:]
            assert len(s.requests) == 30
            return s.max_active

    assert run("capped", 2) == 2   # one job at a time: its 2 connections, never more
    assert run("wide", 8) > 2      # the same jobs without the cap overlap (the check above can fail)
