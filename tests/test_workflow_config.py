"""Config checked before any job (cross-references, region boxes, --config types); the jobs' shell."""

from __future__ import annotations

import copy
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from photoz.config import ConfigError, coerce_overrides, result_settings, validate_config
from photoz import trials

SNAKEMAKE = Path(sys.executable).with_name("snakemake")


@pytest.fixture()
def raw(root):
    return yaml.safe_load((root / "config.yaml").read_text())


def _error(cfg):
    with pytest.raises(ConfigError) as err:
        validate_config(cfg)
    return str(err.value)


def test_trial_naming_a_missing_selection_is_refused(raw):
    raw["trials"]["frac20"]["test"] = "frac25_test"
    msg = _error(raw)
    assert "trials.frac20.test = 'frac25_test'" in msg and "'frac20_test'" in msg


def test_unknown_published_key_is_refused(raw):
    raw["table2"][3]["published"] = "no_suspekt"
    msg = _error(raw)
    assert "table2[3].published = 'no_suspekt'" in msg and "'no_suspect'" in msg


def test_all_cross_reference_errors_in_one_message(raw):
    raw["trials"]["main"]["train"] = "cv_trian"
    raw["table2"][0]["published"] = "fulll"
    msg = _error(raw)
    assert "cv_trian" in msg and "fulll" in msg


@pytest.mark.parametrize("where", [("regions", "suspect_zone"), ("regions", "stripe82"), ("mock", "suspect_zone")])
def test_inverted_region_box_is_refused(raw, where):
    box = raw[where[0]][where[1]]
    lo = "dec_min" if "dec_min" in box else "lambda_min"
    hi = lo.replace("min", "max")
    box[lo], box[hi] = box[hi], box[lo]
    msg = _error(raw)
    assert f"{where[0]}.{where[1]}.{lo}" in msg and ("min <= max" in msg or "is above" in msg), msg


def test_bad_cross_reference_stops_snakemake_before_any_job(root, tmp_path):
    proc = subprocess.run([str(SNAKEMAKE), "-s", str(root / "Snakefile"), "--directory", str(tmp_path), "-n",
                           "--config", "trials={main: {train: cv_trian, test: cv_test, folds: all, members: 2}}"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "trials.main.train = 'cv_trian' is not a selection" in out
    assert "Job stats" not in out and not (tmp_path / "results").exists()


def test_nested_config_overrides_are_typed(raw):
    # what `snakemake --config 'training={epochs: 2, learning_rate: 2e-3}' 'trials={main: {members: 3}}'` hands over
    over = {"training": {"epochs": "2", "learning_rate": "2e-3", "device": "cpu"}, "trials": {"main": {"members": "3"}},
            "cutouts": {"partial_coverage": "drop"}}
    cfg = copy.deepcopy(raw)
    for sec, vals in over.items():
        for k, v in vals.items():
            if isinstance(v, dict):
                cfg[sec][k].update(v)
            else:
                cfg[sec][k] = v
    with pytest.raises(ConfigError, match="wrong type"):
        validate_config(copy.deepcopy(cfg))
    out = validate_config(coerce_overrides(cfg, over))
    assert out["training"]["epochs"] == 2 and out["training"]["learning_rate"] == 0.002
    assert out["trials"]["main"]["members"] == 3 and out["training"]["device"] == "cpu"


def test_nested_override_that_is_not_a_number_still_fails(raw):
    raw["training"]["epochs"] = "ten"
    coerce_overrides(raw, {"training": {"epochs": "ten"}})
    assert "training.epochs = 'ten' has the wrong type" in _error(raw)


def test_nested_config_override_reaches_the_workflow(root, tmp_path, default_config):
    proc = subprocess.run([str(SNAKEMAKE), "-s", str(root / "Snakefile"), "--directory", str(tmp_path), "-n",
                           "--quiet", "rules", "--config", "trials={main: {members: 3}}"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    # main: every fold x 3 members, the one-split trials with one member each
    n_jobs = 3 * default_config["dataset"]["n_folds"] + len(default_config["trials"]) - 1
    assert any(line.split() == ["train", str(n_jobs)] for line in (proc.stdout + proc.stderr).splitlines())


def test_result_settings_leave_out_execution_keys_only(default_config):
    res = result_settings(default_config)
    assert "mem_mb" not in res["training"] and "runtime_min" not in res["training"]
    assert res["training"]["learning_rate"] == default_config["training"]["learning_rate"]
    assert "threads" not in res["cutouts"] and res["cutouts"]["size"] == default_config["cutouts"]["size"]
    assert default_config["training"]["mem_mb"]  # the original is not changed


def test_trials_helpers(default_config):
    assert trials.main_trial(default_config) == "main"
    assert trials.trial_folds(default_config, "main") == list(range(default_config["dataset"]["n_folds"]))
    assert trials.trial_folds(default_config, "frac20") == [0]
    assert trials.trial_seeds(default_config, "main") == list(range(default_config["trials"]["main"]["members"]))
    assert trials.table1_trial(default_config) == "main"
    assert trials.knn_trials(default_config) == ["main"]
    with_lc = dict(default_config, learning_curve=["frac2", "main"])
    assert trials.knn_trials(with_lc) == ["main", "frac2"]  # Table 2's, then the learning curve's
    assert trials.network_name(default_config, "frac2") == "reduced"


def test_job_runs_the_projects_interpreter_from_a_path_with_spaces(root, tmp_path):
    """A checkout under a path with a space; snakemake called without the venv on PATH."""
    repo = tmp_path / "a checkout with spaces"
    repo.mkdir()
    for name in ("Snakefile", "config.yaml", "workflow", "src", "paper", "envs"):
        src = root / name
        (shutil.copytree(src, repo / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
         if src.is_dir() else shutil.copy2(src, repo / name))
    venv = Path(sys.prefix)
    (repo / ".venv").symlink_to(venv, target_is_directory=True)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = "/usr/bin:/bin"  # no venv: a bare `python` here has no pandas (or does not exist)
    proc = subprocess.run([str(SNAKEMAKE), "--cores", "1", "results/tableA1.csv"], cwd=repo, env=env,
                          capture_output=True, text=True, timeout=600)
    log = (repo / "logs" / "tableA1" / "tableA1.log")
    assert proc.returncode == 0, proc.stderr[-3000:] + (log.read_text()[-2000:] if log.exists() else "")
    assert (repo / "results" / "tableA1.csv").stat().st_size > 100



def test_each_mode_keeps_its_own_results(root, tmp_path):
    """Switching mode works in runs/sdss: the mock run's results/ are neither used nor touched."""
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "table2.csv").write_text("mock table\n")
    proc = subprocess.run([str(SNAKEMAKE), "-s", str(root / "Snakefile"), "--summary", "--config", "mode=sdss"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = {line.split("\t")[0]: line.split("\t") for line in proc.stdout.splitlines()[1:] if line.strip()}
    assert rows["results/table2.csv"][4] == "missing"  # the sdss run's own table, under runs/sdss/
    assert (tmp_path / "runs" / "sdss" / ".snakemake").is_dir()
    assert (tmp_path / "results" / "table2.csv").read_text() == "mock table\n"
    # an explicit run_dir wins; the mock default stays where it was
    from photoz.config import load_config, run_dir

    assert run_dir(load_config(root / "config.yaml")) == "."
    assert run_dir({"mode": "mock", "run_dir": "runs/big-mock"}) == "runs/big-mock"


@pytest.mark.parametrize("profile", ["local", "slurm"])
def test_profiles_show_a_failed_jobs_log(root, profile):
    text = (root / "profiles" / profile / "config.v8+.yaml").read_text()
    assert yaml.safe_load(text).get("show-failed-logs") is True
    assert "--show-failed-logs" in (root / "Makefile").read_text()


def test_failed_jobs_log_is_printed_with_the_local_profile(root, tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    for name in ("Snakefile", "config.yaml", "workflow", "src", "paper", "envs", "profiles"):
        src = root / name
        (shutil.copytree(src, repo / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
         if src.is_dir() else shutil.copy2(src, repo / name))
    tables = repo / "src" / "photoz" / "tables.py"
    text = tables.read_text()
    anchor = "        df = tableA1(json.loads(a.network_json), n_bins=a.n_bins)"
    assert anchor in text
    tables.write_text(text.replace(anchor, '        log.error("deliberate failure of this test")\n        return 1'))
    proc = subprocess.run([str(SNAKEMAKE), "--profile", str(repo / "profiles" / "local"), "--cores", "1",
                           "results/tableA1.csv"], cwd=repo, capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0
    assert "deliberate failure of this test" in proc.stdout + proc.stderr


def test_learning_curve_trials_are_checked(default_config):
    lc = {"train": "cv_train", "test": "cv_test", "folds": "single", "members": 1, "train_size": 250}
    good = dict(default_config, trials=dict(default_config["trials"], lc250=lc), learning_curve=["lc250", "main"])
    assert validate_config(good)["learning_curve"] == ["lc250", "main"]
    bad = dict(good, trials=dict(good["trials"], lc250=dict(lc, train="frac50_train")))
    with pytest.raises(ConfigError, match="train_size needs train: cv_train"):
        validate_config(bad)
    with pytest.raises(ConfigError, match=r"learning_curve\[1\] = 'nosuch'"):
        validate_config(dict(good, learning_curve=["lc250", "nosuch"]))
    with pytest.raises(ConfigError, match="must train on cv_train and test on cv_test"):
        validate_config(dict(good, learning_curve=["frac50"]))
    lc_frac = {"train": "cv_train", "test": "cv_test", "folds": "single", "members": 1, "train_fraction": 0.9}
    with pytest.raises(ConfigError, match="exceeds the training side"):
        validate_config(dict(good, trials=dict(good["trials"], lc250=lc_frac)))
