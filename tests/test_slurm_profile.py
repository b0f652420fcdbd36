"""Fast checks of the SLURM and local profiles (no daemons needed)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = Path(sys.executable).parent / "snakemake"
PRESET = ROOT / "config" / "sdss-dr12.yaml"


def test_profiles_parse_and_name_the_executor():
    slurm = yaml.safe_load((ROOT / "profiles" / "slurm" / "config.v8+.yaml").read_text())
    assert slurm["executor"] == "slurm"
    assert slurm["slurm-requeue"] is True and slurm["retries"] >= 1 and slurm["rerun-incomplete"]
    assert {"runtime", "mem_mb"} <= set(slurm["default-resources"])
    # account and partition are left to the user: present only as comments
    assert "slurm_account" not in slurm["default-resources"]
    assert slurm["set-resources"]["train"]["gpu"] == 1
    assert slurm["set-threads"]["cutouts"] > 1
    local = yaml.safe_load((ROOT / "profiles" / "local" / "config.v8+.yaml").read_text())
    assert local["cores"] >= 1 and "gpu" in local["resources"]


def _jobs(text: str):
    """(rule, resources line) of every job in a dry run's output."""
    jobs = []
    for block in re.split(r"\n(?=(?:local)?rule \S+:)", text):
        m = re.match(r"(?:local)?rule (\S+):", block)
        if m:
            res = re.search(r"^\s+resources: (.*)$", block, flags=re.M)
            jobs.append((m.group(1), res.group(1) if res else ""))
    return jobs


def test_sdss_dryrun_puts_gpus_on_training_jobs(tmp_path):
    if not PRESET.exists():
        pytest.skip("config/sdss-dr12.yaml not written yet")
    trials = list(yaml.safe_load(PRESET.read_text()).get("trials", {"main": None}))
    targets = [f"results/ensemble/{t}.parquet" for t in trials]
    res = subprocess.run([str(SNAKEMAKE), *targets, "--profile", "profiles/slurm", "-n",
                          "--configfile", str(ROOT / "config.yaml"), str(PRESET), "-d", str(tmp_path), "-s", str(ROOT / "Snakefile")],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    if res.returncode != 0:
        pytest.skip(f"the sdss-dr12 DAG does not build yet: {res.stderr.strip()[-300:]}")
    jobs = _jobs(res.stdout)
    gpu_rules = [(r, s) for r, s in jobs if r.startswith(("train", "predict"))]
    assert gpu_rules, "no training jobs in the dry run"
    for rule, resources in gpu_rules:
        assert re.search(r"\bgpu=1\b", resources), f"{rule} without a GPU: {resources}"
    # the grouped cutouts: hundreds of jobs, not one per galaxy
    n_cutouts = sum(r == "cutouts" for r, _ in jobs)
    assert 100 <= n_cutouts <= 2000
    assert all(not re.search(r"\bgpu=[1-9]", s) for r, s in jobs if r == "cutouts")


def test_profile_names_work_as_typed_after_setup(tmp_path):
    """`make setup` links the profiles where Snakemake looks for names; a user's own is left alone."""
    import os

    env = dict(os.environ, XDG_CONFIG_HOME=str(tmp_path / "cfg"))
    # a user's own `local` profile: never replaced, and said so
    own = tmp_path / "cfg" / "snakemake" / "local"
    own.mkdir(parents=True)
    (own / "config.yaml").write_text("cores: 3\n")
    res = subprocess.run([sys.executable, str(ROOT / "tools" / "install_profiles.py")], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    assert "profile slurm: linked" in res.stdout
    assert "profile local: NOT linked" in res.stdout and "your own profile" in res.stdout
    assert (own / "config.yaml").read_text() == "cores: 3\n" and not own.is_symlink()
    link = tmp_path / "cfg" / "snakemake" / "slurm"
    assert link.is_symlink() and link.resolve() == (ROOT / "profiles" / "slurm").resolve()
    # the command as typed, from the project root: the full DAG of the DR12 preset (--forceall only
    # so that results already built in this checkout do not shorten the list)
    res = subprocess.run([str(SNAKEMAKE), "--profile", "slurm", "-n", "--configfile", "config/sdss-dr12.yaml",
                          "--forceall"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", res.stdout, flags=re.M))
    assert int(counts["total"]) >= 700 and counts["query"] == "1" and int(counts["train_stacked_main"]) == 5
    assert counts["paper"] == "1" and int(counts["predict"]) == 66


# --- the archive's jobs and connections (issue 29) -------------------------------------------
ARCHIVE_CAP = 8  # "a few" simultaneous connections: what the profiles may allow at most


def _sdss_dryrun(tmp_path, *extra, profile="profiles/slurm"):
    return subprocess.run([str(SNAKEMAKE), "--profile", profile, "-n", "--forceall", "--configfile",
                           str(ROOT / "config.yaml"), str(PRESET), *extra, "-d", str(tmp_path),
                           "-s", str(ROOT / "Snakefile")], cwd=ROOT, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("name", ["slurm", "local"])
def test_profiles_cap_the_archive_connections(name):
    prof = yaml.safe_load((ROOT / "profiles" / name / "config.v8+.yaml").read_text())
    caps = prof["resources"]
    preset = yaml.safe_load(PRESET.read_text())["sdss"]
    assert 1 <= caps["sas"] <= ARCHIVE_CAP and caps["skyserver"] == 1
    # a retrieve job holds parallel_downloads connections: at least one fits, and two groups run at once
    assert caps["sas"] // preset["parallel_downloads"] >= 2


def test_archive_jobs_hold_their_connections_as_resources(tmp_path):
    """Every job's `sas` is sdss.parallel_downloads, so the profile's cap bounds the connections of all jobs."""
    res = _sdss_dryrun(tmp_path)
    assert res.returncode == 0, res.stderr[-2000:]
    jobs = _jobs(res.stdout)
    # docs/slurm.md's job table is this dry run's summary
    total = re.search(r"^total\s+(\d+)$", res.stdout, flags=re.M).group(1)
    assert f"| **total** | **{total}** |" in (ROOT / "docs" / "slurm.md").read_text()
    n = yaml.safe_load(PRESET.read_text())["sdss"]["parallel_downloads"]
    retrieve = [s for r, s in jobs if r == "retrieve"]
    assert len(retrieve) == 300 and all(re.search(rf"\bsas={n}\b", s) for s in retrieve)
    for rule in ("query", "frame_index"):
        assert [bool(re.search(r"\bskyserver=1\b", s)) for r, s in jobs if r == rule] == [True]
    # no other job touches the archive's resources
    assert not [r for r, s in jobs if re.search(r"\b(sas|skyserver)=", s) and r not in ("retrieve", "query",
                                                                                          "frame_index")]


def test_more_downloads_per_job_than_the_cap_is_refused_naming_the_keys(tmp_path):
    res = _sdss_dryrun(tmp_path, "--config", "sdss={parallel_downloads: 9}")
    out = res.stdout + res.stderr
    assert res.returncode != 0
    assert "sdss.parallel_downloads is 9" in out and "sas=8" in out and "none could start" in out
    ok = _sdss_dryrun(tmp_path, "--config", "sdss={parallel_downloads: 9}", "--resources", "sas=9")
    assert ok.returncode == 0, ok.stderr[-2000:]


def test_network_jobs_switch_is_validated(tmp_path):
    res = _sdss_dryrun(tmp_path, "--config", "sdss={network_jobs: login_node}")
    assert res.returncode != 0 and "network_jobs" in res.stdout + res.stderr
