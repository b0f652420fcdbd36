"""What Snakemake redoes, on a finished run: nothing for execution settings, the right jobs for the rest.

A "finished run" here is a copy of the workflow's sources in a temporary
folder and a working directory (``--directory``) where every output exists
and Snakemake's metadata (params, code, inputs) is recorded: every output
file is created empty, then ``snakemake --touch`` records the jobs as done.
Dry runs then show what a change would schedule.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from photoz.config import EXECUTION_KEYS

SOURCES = ["Snakefile", "config.yaml", "config", "workflow", "src", "paper", "envs"]
SNAKEMAKE = Path(sys.executable).with_name("snakemake")


def _snakemake(repo, run, *args, check=True, env=None):
    cmd = [str(SNAKEMAKE), "-s", str(repo / "Snakefile"), "--directory", str(run), "--cores", "1", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def _copy_sources(root, dest):
    dest.mkdir(parents=True)
    for name in SOURCES:
        src = root / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(src, dest / name)
    return dest


def scheduled(repo, run, *args):
    """{rule: job count} that a dry run would execute."""
    proc = _snakemake(repo, run, "-n", "--quiet", "rules", *args)
    out = proc.stdout + proc.stderr
    if "Nothing to be done" in out:
        return {}
    counts = {}
    block = out.split("Job stats:", 1)[1] if "Job stats:" in out else ""
    for line in block.splitlines():
        m = re.fullmatch(r"(\w+)\s+(\d+)", line.strip())
        if m and m.group(1) != "total":
            counts[m.group(1)] = int(m.group(2))
    assert counts, f"no job stats in the dry run's output:\n{out[-2000:]}"
    return counts


@pytest.fixture(scope="module")
def finished(root, tmp_path_factory):
    """(repo copy, working directory) of a default run whose outputs all exist and are recorded as done."""
    base = tmp_path_factory.mktemp("rerun")
    repo = _copy_sources(root, base / "repo")
    run = base / "run"
    run.mkdir()
    summary = _snakemake(repo, run, "--summary").stdout
    files = [line.split("\t")[0] for line in summary.splitlines()[1:] if line.strip()]
    assert "paper/ms.pdf" in files and len(files) > 50
    for f in files:
        path = run / f
        if path.suffix:  # a file
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
        else:  # a directory() output (results/frames/group-N)
            path.mkdir(parents=True, exist_ok=True)
    _snakemake(repo, run, "--touch")
    assert scheduled(repo, run) == {}, "a touched run still has work to do"
    return repo, run


def _override(section, key, value):
    return f"{section}={{{key}: {value}}}"


def _changed_value(section, key):
    """A valid value different from the default config's, for every execution key."""
    special = {"device": "cpu", "amp": "none", "channels_last": "false", "compile": "false", "fused": "true",
               "cuda_graph": "false",
               "resident": "false", "resident_dtype": "bfloat16", "stack_members": "true", "mem_mb": 9000,
               "max_requests_per_minute": 30, "max_retries": 9, "parallel_downloads": 2,
               "network_jobs": "compute_nodes"}
    return special.get(key, 17)


@pytest.mark.parametrize("section,key", [(s, k) for s, keys in EXECUTION_KEYS.items() for k in keys])
def test_execution_key_change_schedules_nothing(finished, section, key):
    repo, run = finished
    assert scheduled(repo, run, "--config", _override(section, key, _changed_value(section, key))) == {}


def test_all_execution_keys_at_once_schedule_nothing(finished):
    repo, run = finished
    overrides = []
    for section, keys in EXECUTION_KEYS.items():
        body = ", ".join(f"{k}: {_changed_value(section, k)}" for k in keys)
        overrides.append(f"{section}={{{body}}}")
    assert scheduled(repo, run, "--config", *overrides) == {}


def test_learning_rate_change_retrains(finished):
    repo, run = finished
    from photoz import trials
    from photoz.config import load_config

    cfg = load_config(repo / "config.yaml")
    models = sum(len(trials.trial_folds(cfg, t)) * len(trials.trial_seeds(cfg, t)) for t in cfg["trials"])
    assert models >= 7
    jobs = scheduled(repo, run, "--config", _override("training", "learning_rate", 0.002))
    assert jobs.get("train") == models and jobs.get("predict") == models
    assert jobs.get("ensemble") == len(cfg["trials"])
    assert "paper" in jobs and "cutouts" not in jobs and "query" not in jobs


def test_predict_from_change_repredicts_without_retraining(finished):
    """Every member writes best.pt, average.pt and checkpoint.pt: choosing another only redoes the predictions."""
    repo, run = finished
    from photoz import trials
    from photoz.config import load_config

    cfg = load_config(repo / "config.yaml")
    assert cfg["training"]["predict_from"] == "average"
    models = sum(len(trials.trial_folds(cfg, t)) * len(trials.trial_seeds(cfg, t)) for t in cfg["trials"])
    jobs = scheduled(repo, run, "--config", _override("training", "predict_from", "best"))
    assert "train" not in jobs and jobs.get("predict") == models and "paper" in jobs


def test_editing_one_figure_rebuilds_that_figure_and_the_paper(finished):
    repo, run = finished
    module = repo / "src" / "photoz" / "figures" / "fig10_pit.py"
    text = module.read_text()
    try:
        module.write_text(text + "\n# an edit of the figure's code\n")
        os.utime(module, (module.stat().st_atime, module.stat().st_mtime + 3600))
        assert scheduled(repo, run) == {"figure": 1, "paper": 1, "all": 1}
        listed = _snakemake(repo, run, "-n").stdout
        assert re.findall(r"wildcards: name=(\w+)", listed) == ["fig10_pit"]
    finally:
        module.write_text(text)
    assert scheduled(repo, run) == {}


def test_paper_rule_works_with_directory(finished):
    """The paper's sources are found beside the Snakefile, whatever --directory says."""
    repo, run = finished
    listed = _snakemake(repo, run, "-n", "-p", "--forcerun", "paper", "paper/ms.pdf").stdout
    assert f"--tex {repo / 'paper' / 'ms.tex'}" in listed.replace("'", "")
