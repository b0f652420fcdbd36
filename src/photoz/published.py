"""The published results of Pasquet et al. (2019), as data.

The values live in ``photoz/data/published.yaml`` (package data), transcribed
from the paper's Tables 1 and 2 (cleaned in
``shared/reference/published-results.md``) and the parameter counts of the
network (Table A1, Sect. 3). Table 2 entries are keyed by the ``published:``
keys of the config's ``table2:`` rows.
"""

from __future__ import annotations

import copy
import functools
from importlib import resources

import yaml

__all__ = ["load", "table1", "table2_row", "TABLE2_KEYS", "tableA1"]

METRICS = ("bias", "sigma_mad", "eta")
TABLE2_FIELDS = ("n_train", "n_test", "bias", "sigma_mad", "eta", "crps")


@functools.lru_cache(maxsize=1)
def _load():
    text = resources.files("photoz").joinpath("data/published.yaml").read_text()
    data = yaml.safe_load(text)
    for key in ("table1", "table2", "tableA1"):
        if key not in data:
            raise ValueError(f"photoz/data/published.yaml: missing section {key!r}")
    for key, row in data["table2"].items():
        missing = [f for f in TABLE2_FIELDS if f not in row]
        if missing:
            raise ValueError(f"photoz/data/published.yaml: table2.{key} misses {missing}")
    return data


def load():
    """The whole published-results mapping (a deep copy)."""
    return copy.deepcopy(_load())


def table1():
    """Per-fold rows ``[{fold, bias, sigma_mad, eta}, ...]`` and the mean row, as a tuple."""
    d = _load()["table1"]
    return copy.deepcopy(d["folds"]), dict(d["mean"])


TABLE2_KEYS = tuple(_load()["table2"])


def table2_row(key):
    """Published Table 2 values for ``key`` (``n_train, n_test, bias, sigma_mad, eta, crps``; None = not given).

    Raises ``KeyError`` naming the known keys.
    """
    rows = _load()["table2"]
    if key not in rows:
        raise KeyError(f"no published Table 2 row {key!r}; known keys: {', '.join(rows)}")
    return dict(rows[key])


def tableA1():
    """``{"total_code", "total_paper", "stages": {stage: params}}``."""
    return copy.deepcopy(_load()["tableA1"])
