"""The restated training settings (tests/nn_settings.py, photoz.nn.bench.PAPER_SETTINGS) are the configs' own."""

from __future__ import annotations

from dataclasses import asdict

import pytest

from nn_settings import DEFAULT_SETTINGS, config_json, train_config
from photoz.config import ROOT, load_config
from photoz.nn.bench import PAPER_SETTINGS
from photoz.nn.train import TrainConfig


def _from_config(path):
    cfg = load_config(path)
    tr = cfg["training"]
    return TrainConfig.from_dicts(tr, cfg["networks"][tr["network"]], cfg["bins"], ebv_input=True)


@pytest.mark.parametrize("path, restated", [("config.yaml", DEFAULT_SETTINGS),
                                            ("config/sdss-dr12.yaml", PAPER_SETTINGS)])
def test_restated_settings_are_the_configs(path, restated):
    got = asdict(_from_config(ROOT / path))
    got.pop("deterministic")
    assert got == restated


def test_config_json_round_trips():
    c = config_json(epochs=3)
    assert TrainConfig.from_dicts(c["training"], c["network"], c["bins"], ebv_input=True) == train_config(epochs=3)


def test_a_missing_setting_names_its_config_key():
    c = config_json()
    del c["training"]["batch_size"], c["bins"]["n"]
    with pytest.raises(KeyError, match=r"training\.batch_size, bins\.n"):
        TrainConfig.from_dicts(c["training"], c["network"], c["bins"], ebv_input=True)
