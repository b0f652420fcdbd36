"""Trials, defined once: which folds, members, network and outputs a trial uses.

A trial is an entry of the config's ``trials:`` (a training and a test
selection, ``folds: all | single``, ``members``, optionally ``network`` and
``ebv_input``). Every part of the project that needs to know what a trial
runs -- the rules (``workflow/rules/common.smk``), the tables, the kNN, the
paper and the figures -- asks these helpers instead of re-deriving it.

Pure functions of the (validated) config; no third-party imports, so the
Snakefile can import this module at parse time.
"""

from __future__ import annotations

__all__ = [
    "MAIN", "main_trial", "folds", "trial_folds", "trial_seeds", "network_name", "ensemble_path",
    "knn_path", "table2_trials", "knn_trials", "table1_trial", "learning_curve", "trained_trials",
    "SPLIT_KEYS", "split_spec", "noebv_trial", "train_share",
]

#: Name of the paper's main trial (80% training, 5-fold cross-validation).
MAIN = "main"


def main_trial(cfg):
    """Name of the main trial: ``main`` if the config has it, else its first trial."""
    trials = cfg["trials"]
    if not trials:
        raise ValueError("the config has no trials")
    return MAIN if MAIN in trials else next(iter(trials))


def folds(spec, n_folds):
    """Folds of a trial entry ``spec``: every fold for ``folds: all``, fold 0 for ``single``."""
    return list(range(int(n_folds))) if spec["folds"] == "all" else [0]


def trial_folds(cfg, name):
    """The cross-validation folds trial ``name`` is trained and tested on."""
    return folds(cfg["trials"][name], cfg["dataset"]["n_folds"])


def trial_seeds(cfg, name):
    """The ensemble members (seed numbers) of trial ``name``."""
    return list(range(int(cfg["trials"][name]["members"])))


def network_name(cfg, name):
    """The network (key of ``networks``) trial ``name`` trains."""
    return cfg["trials"][name].get("network", cfg["training"]["network"])


def noebv_trial(cfg):
    """The trial trained without the E(B-V) input (``ebv_input: false``) on the main trial's fold-0 selection.

    The first such trial whose ``train`` and ``test`` selections are the main
    trial's, whole (no ``train_size`` / ``train_fraction``), so that it is
    tested on the main trial's fold-0 test galaxies; ``None`` if there is none.
    The paper's reddening test (Fig. 11) compares the two.
    """
    main = cfg["trials"][main_trial(cfg)]
    for name, spec in cfg["trials"].items():
        same = all(spec.get(k) == main.get(k) for k in ("train", "test"))
        whole = not any(k in spec for k in ("train_size", "train_fraction"))
        if spec["ebv_input"] is False and same and whole and 0 in folds(spec, cfg["dataset"]["n_folds"]):
            return name
    return None


def train_share(cfg, name):
    """The share of the catalogue one member of trial ``name`` trains on, as far as the config tells.

    ``cv_train``: the ``(n_folds - 1) / n_folds`` of a fold's training side, or the
    trial's ``train_fraction`` of the catalogue; ``{selection}_train``: the
    selection's ``train_fraction`` of its pool, a pool ``all`` or ``no_s82``
    counting as the whole catalogue and ``s82`` (one stripe) as none of it. A
    ``train_size`` trial counts as 0 (its count is not a share before the
    catalogue exists). Only an ordering: the train rule's ``priority`` starts the
    longest jobs first, so that no long job is left to run alone at the end.
    """
    spec = cfg["trials"][name]
    if spec["train"] == "cv_train":
        if "train_size" in spec:
            return 0.0
        n_folds = int(cfg["dataset"]["n_folds"])
        return float(spec.get("train_fraction", (n_folds - 1) / n_folds))
    sel = cfg["dataset"]["selections"][spec["train"].removesuffix("_train")]
    return float(sel["train_fraction"]) if sel["pool"] in ("all", "no_s82") else 0.0


#: Keys of a trial entry that decide its galaxies (``photoz.dataset.splits.selection_masks``).
SPLIT_KEYS = ("train", "test", "folds", "train_size", "train_fraction")


def split_spec(cfg, name):
    """The keys of trial ``name`` that decide which galaxies it trains and tests on (:data:`SPLIT_KEYS`)."""
    return {k: v for k, v in cfg["trials"][name].items() if k in SPLIT_KEYS}


def ensemble_path(name, results="results"):
    """The ensemble predictions of trial ``name`` (docs/dataflow.md, Sect. 4)."""
    return f"{results}/ensemble/{name}.parquet"


def knn_path(name, results="results"):
    """The kNN predictions of trial ``name`` (docs/dataflow.md, Sect. 5)."""
    return f"{results}/knn/{name}.parquet"


def table2_trials(cfg):
    """Trials named by the rows of Table 2, in order of first appearance."""
    return list(dict.fromkeys(row["trial"] for row in cfg["table2"]))


def learning_curve(cfg):
    """Trials of the learning curve (config ``learning_curve``), smallest training set first."""
    return list(cfg.get("learning_curve") or [])


def knn_trials(cfg):
    """Trials the kNN runs on: those with a kNN row in Table 2, then the learning curve's."""
    rows = [r["trial"] for r in cfg["table2"] if r["estimator"] == "knn"]
    return list(dict.fromkeys(rows + learning_curve(cfg)))


def trained_trials(cfg):
    """Trials whose CNN ensemble the analysis needs: Table 2's, then the learning curve's."""
    return list(dict.fromkeys(table2_trials(cfg) + learning_curve(cfg)))


def table1_trial(cfg):
    """The trial of Table 1: that of the row published as ``full``, else the first all-folds trial."""
    for row in cfg["table2"]:
        if row.get("published") == "full":
            return row["trial"]
    for name, spec in cfg["trials"].items():
        if spec["folds"] == "all":
            return name
    raise ValueError("Table 1 needs a trial with folds: all (none in config trials)")
