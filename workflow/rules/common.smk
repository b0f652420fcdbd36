# Shared set-up of all rule files (config validation before any job starts)
# and the helpers the other rule files use.
import json
import os
import re
import shlex
import sys
from pathlib import Path

#: The checkout: the folder of the main Snakefile (sources are found here,
#: whatever the working directory given with --directory).
ROOT = Path(workflow.main_snakefile).resolve().parent
sys.path.insert(0, str(ROOT / "src"))

from photoz import trials as _trials  # noqa: E402
from photoz.config import (  # noqa: E402
    ConfigError, coerce_overrides, result_settings, run_dir, validate_config,
)
from photoz.figures import FIGURES, declared_config, figure_inputs, figure_source  # noqa: E402
from photoz.nn.files import WEIGHTS_FILES  # noqa: E402

try:
    # `--config 'training={epochs: 2}'` arrives as strings: typed per the schema first.
    coerce_overrides(config, workflow.config_settings.overwrite_config)
    config = validate_config(config)
except ConfigError as err:
    raise WorkflowError(str(err)) from None

MOCK = config["mode"] == "mock"
RUN_DIR = run_dir(config)
BANDS = ["u", "g", "r", "i", "z"]
GROUPS = list(range(config["tiles"]["n_groups"]))
TRIALS = list(config["trials"])


# --- the shell of every job ---
# Each job runs `python -m photoz COMMAND ...` under bash's strict mode (kept
# from Snakemake's default prefix). `python` is the project's own interpreter:
# the checkout's .venv (put first on PATH, whichever snakemake launched the
# run), else the interpreter running Snakemake; with --sdm conda, the rule's
# conda env (activated before this prefix, so PATH is left alone). The
# package is found from the source tree, installed or not; every path is
# quoted (a checkout path may hold spaces).
def _python_bin():
    venv = ROOT / ".venv" / "bin"
    return venv if (venv / "python").exists() else Path(sys.executable).parent


def _uses_conda():
    methods = getattr(workflow.deployment_settings, "deployment_method", None) or ()
    return any("conda" in str(m).lower() for m in methods)


_SRC = shlex.quote(str(ROOT / "src"))
_PATH = "" if _uses_conda() else f'export PATH={shlex.quote(str(_python_bin()))}:"$PATH"; '
shell.prefix(f"set -euo pipefail; {_PATH}export PYTHONPATH={_SRC}; ")


# --- config as params ---
# A rule's `settings` param holds only the values that change its output:
# Snakemake's rerun trigger. The execution keys (photoz.config.EXECUTION_KEYS:
# resources, device and speed settings) reach a command only through a param
# function taking `threads` (`config_json`), which Snakemake treats as derived
# and never compares: changing them redoes no work.
def settings_json(*sections, **values):
    """JSON of config sections without their execution keys, plus extra values (the rerun trigger)."""
    out = {s: result_settings(config, s) for s in sections}
    out.update(values)
    return json.dumps(out, sort_keys=True)


def config_json(*sections, **values):
    """A derived param: the config sections whole (execution keys included) as JSON, for the command."""
    text = json.dumps({**{s: config[s] for s in sections}, **values})

    def _whole(wildcards, threads):
        return text

    return _whole


# --- trials (photoz.trials) ---
def trial_folds(trial):
    """The cross-validation folds a trial is trained and tested on."""
    return _trials.trial_folds(config, trial)


def trial_seeds(trial):
    """The ensemble members (seeds) of a trial."""
    return _trials.trial_seeds(config, trial)


def train_priority(trial, members=1):
    """Scheduling priority of a train job: its share of the catalogue times the members it trains.

    Longest jobs first (all become ready together after the shards), so that the
    last one does not run alone on an otherwise idle machine. Never changes a result.
    """
    return int(round(100 * _trials.train_share(config, trial) * members))


def table2_trials():
    return _trials.table2_trials(config)


def knn_trials():
    return _trials.knn_trials(config)


def learning_curve_trials():
    """The config's learning-curve trials, ascending training size (empty: no learning curve)."""
    return _trials.learning_curve(config)


LEARNING_CURVE_CSV = "results/learning_curve.csv"


def reddening_ensembles():
    """The main and no-E(B-V) ensembles the paper's reddening sentence compares (empty without such a trial)."""
    noebv = _trials.noebv_trial(config)
    if noebv is None:
        return {}
    return {"ensemble": _trials.ensemble_path(_trials.main_trial(config)), "ensemble_noebv": _trials.ensemble_path(noebv)}


def run_figures():
    """The figures this run draws: every one of FIGURES, those reading the learning curve only when it has trials."""
    return [n for n in FIGURES if LEARNING_CURVE_CSV not in figure_inputs(n, config).values() or learning_curve_trials()]


def table1_trial():
    try:
        return _trials.table1_trial(config)
    except ValueError as err:
        raise WorkflowError(str(err)) from None


def _trial_json(wildcards):
    return json.dumps(config["trials"][wildcards.trial], sort_keys=True)


# --- used by mock_sky.smk ---
MOCK_CHUNKS = list(range(config["mock"]["n_chunks"]))


# --- used by query.smk ---
MOCK_DB = "results/mock/skyserver.sqlite"


# The archive's connections are scheduler resources: a retrieve job holds
# `sas` = sdss.parallel_downloads SAS connections, a query or frame_index job
# `skyserver` = 1 (its requests are sequential). A profile caps their sum over
# all running jobs (profiles' `resources: sas=8, skyserver=1`, or
# --resources), so the archive never sees more than the cap however many
# jobs the executor may run.
SAS_CONNECTIONS = config["sdss"]["parallel_downloads"]


def global_cap(name):
    """The run's cap on resource ``name`` (profile ``resources:`` / ``--resources``), None if uncapped."""
    return workflow.global_resources.get(name).value


if global_cap("sas") is not None and SAS_CONNECTIONS > global_cap("sas"):
    raise WorkflowError(
        f"sdss.parallel_downloads is {SAS_CONNECTIONS}, but this run allows at most sas={global_cap('sas')} "
        "simultaneous SAS connections (the profile's `resources: sas`, or --resources): one retrieve job holds "
        "parallel_downloads connections, so none could start. Lower sdss.parallel_downloads or raise the cap."
    )


def _mock_db_arg():
    return f"--mock-db {MOCK_DB}" if MOCK else ""


def _frames_dir(pattern):
    out = directory(pattern)
    return temp(out) if config["tiles"].get("delete_frames_after_cutouts", False) else out


# --- used by train.smk ---
TRAINING = config["training"]


TRAIN_GPU = 0 if TRAINING["device"] == "cpu" else 1


def _train_network(trial):
    return config["networks"][_trials.network_name(config, trial)]


def _train_settings(trial):
    """What a trial's training depends on: training keys (without execution keys, and without predict_from,
    which only picks the predict step's input among the member's files), network, bins."""
    training = {k: v for k, v in result_settings(config, "training").items() if k != "predict_from"}
    return json.dumps({"training": training, "bins": result_settings(config, "bins"), "network": _train_network(trial)},
                      sort_keys=True)


def _train_config(trial):
    """The command's --config-json (execution keys included): a derived param."""
    return config_json("training", "bins", network=_train_network(trial))


def _member_files(name, trial):
    """A train rule's outputs ``name`` (checkpoint.pt, ...): one {seed}, or every seed of ``trial`` (stacked)."""
    if trial is None:
        return f"results/models/{{trial}}/fold{{fold}}/seed{{seed}}/{name}"
    return expand(f"results/models/{{{{trial}}}}/fold{{{{fold}}}}/seed{{seed}}/{name}", seed=trial_seeds(trial))


def train_rules():
    """The train rules: ``{"train": None}`` (one job per member), or one ``train_stacked_<trial>`` per trial."""
    return {f"train_stacked_{t}": t for t in TRIALS} if TRAINING["stack_members"] else {"train": None}


def _checkpoints(output):
    cps = output.checkpoint
    return [cps] if isinstance(cps, str) else list(cps)


def _output_seeds(wildcards, output):
    """The members a train job writes, from its declared outputs (.../seed{s}/checkpoint.pt)."""
    return " ".join(Path(p).parent.name.removeprefix("seed") for p in _checkpoints(output))


def _models_root(wildcards, output):
    """results/models, the root of the declared outputs (.../{trial}/fold{f}/seed{s}/checkpoint.pt)."""
    return str(Path(_checkpoints(output)[0]).parents[3])


# --- used by figures.smk and paper.smk ---
def figure_input_files(wildcards):
    """A figure's inputs, as its module declares them (``INPUTS``), and the module's own source."""
    return {**figure_inputs(wildcards.name, config), "code": str(figure_source(wildcards.name))}


def figure_args(inputs):
    """Command-line options --NAME PATH for a figure's declared inputs (not its source file)."""
    return " ".join(f"--{key.replace('_', '-')} {shlex.quote(str(path))}" for key, path in inputs.items()
                    if key != "code")
