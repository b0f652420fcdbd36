# Shared set-up of every rule family: config validation before any job starts,
# and the wildcard helpers the other rule files use.
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir) / "src"))

from photoz.config import ConfigError, validate_config  # noqa: E402

try:
    config = validate_config(config)
except ConfigError as err:
    raise WorkflowError(str(err)) from None

MOCK = config["mode"] == "mock"
BANDS = ["u", "g", "r", "i", "z"]
GROUPS = list(range(config["tiles"]["n_groups"]))
TRIALS = list(config["trials"])
# Inside the rules, `python -m photoz ...` is the entry point of the package:
# `python` is the one of the rule's environment (the local .venv, which the
# Makefile puts first on PATH, or the rule's conda env with --sdm conda, where
# the package is found through PYTHONPATH). No braces: it is pasted into shell:.
# (PYTHONPATH is set, not extended: Snakemake's shell runs under `set -u`.)
PHOTOZ = f"PYTHONPATH={Path(workflow.basedir) / 'src'} python -m photoz"


def trial_folds(trial):
    """The cross-validation folds a trial is trained and tested on."""
    spec = config["trials"][trial]
    return list(range(config["dataset"]["n_folds"])) if spec["folds"] == "all" else [0]


def trial_seeds(trial):
    """The ensemble members (seeds) of a trial."""
    return list(range(config["trials"][trial]["members"]))


wildcard_constraints:
    trial="[a-z][a-z0-9_]*",
    fold=r"\d+",
    seed=r"\d+",
    group=r"\d+",
