# Shared set-up of all rule files (config validation before any job starts)
# and the wildcard helpers the other rule files use.
import json
import os
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
# Each job runs `python -m photoz COMMAND ...`, where `python` is that of the
# rule's environment (the local .venv, which the Makefile puts first on PATH,
# or the rule's conda env with --sdm conda), and the package is found from the
# source tree, installed or not.
shell.prefix(f"export PYTHONPATH={Path(workflow.basedir) / 'src'}; ")


def trial_folds(trial):
    """The cross-validation folds a trial is trained and tested on."""
    spec = config["trials"][trial]
    return list(range(config["dataset"]["n_folds"])) if spec["folds"] == "all" else [0]


def trial_seeds(trial):
    """The ensemble members (seeds) of a trial."""
    return list(range(config["trials"][trial]["members"]))


# --- used by figures.smk ---
FIGURES = ["fig01_sky_and_nz", "fig02_gallery", "fig04_architecture", "fig05_protocol", "fig06_dz", "fig07_zphot_zspec", "fig08_bias", "fig09_pdfs", "fig10_pit", "fig11_ebv_inclination", "fig12_sky_maps", "fig13_mean_pdfs", "fig14_snr_psf", "figA_image_quality"]


FIG_CONFIG = json.dumps(config)


def figure_args(inputs):
    """Command-line options --NAME PATH for a figure's named inputs (the shards folder from the manifest)."""
    args = []
    for key, path in inputs.items():
        if key == "manifest":
            args.append(f"--shards {os.path.dirname(path)}")
        else:
            args.append(f"--{key.replace('_', '-')} {path}")
    return " ".join(args)


# --- used by mock_sky.smk ---
MOCK_CHUNKS = list(range(config["mock"]["n_chunks"]))


# --- used by query.smk ---
MOCK_DB = "results/mock/skyserver.sqlite"


def _mock_db_arg():
    return f"--mock-db {MOCK_DB}" if MOCK else ""


def _frames_dir(pattern):
    out = directory(pattern)
    return temp(out) if config["tiles"].get("delete_frames_after_cutouts", False) else out


# --- used by tables.smk ---
def table2_trials():
    """Trials named by the rows of Table 2, in order of first appearance."""
    return list(dict.fromkeys(row["trial"] for row in config["table2"]))


def knn_trials():
    """Trials with a kNN row in Table 2."""
    return list(dict.fromkeys(r["trial"] for r in config["table2"] if r.get("estimator", "cnn") == "knn"))


def table1_trial():
    """The trial of Table 1: that of the row published as `full`, else the first all-folds trial."""
    for row in config["table2"]:
        if row.get("published") == "full":
            return row["trial"]
    for name, spec in config["trials"].items():
        if spec["folds"] == "all":
            return name
    raise WorkflowError("Table 1 needs a trial with folds: all (none in config trials)")


# --- used by train.smk ---
TRAINING = config["training"]


TRAIN_GPU = 0 if TRAINING["device"] == "cpu" else 1


def _network_name(trial):
    return config["trials"][trial].get("network", TRAINING["network"])


def _train_cfg(trial):
    """The settings of a trial's training run, as JSON (a change reruns the jobs)."""
    return json.dumps({"training": TRAINING, "network": config["networks"][_network_name(trial)],
                       "bins": config["bins"]}, sort_keys=True)


def _trial_json(wildcards):
    return json.dumps(config["trials"][wildcards.trial], sort_keys=True)
