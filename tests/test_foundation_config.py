"""The config is validated against the schema before any job starts."""

from __future__ import annotations

import copy
import subprocess
import sys

import pytest
import yaml

from photoz.config import ConfigError, load_config, validate_config


@pytest.fixture()
def raw(root):
    with open(root / "config.yaml") as fh:
        return yaml.safe_load(fh)


def test_default_config_validates_and_fills_defaults(raw):
    cfg = validate_config(raw)
    assert cfg["mode"] == "mock"
    # Defaults from the schema are filled in where the YAML is silent.
    assert cfg["trials"]["main"]["ebv_input"] is True
    assert raw["trials"]["main"].get("ebv_input") is None  # the input is not modified


@pytest.mark.parametrize("preset", ["config/sdss-dr12.yaml", "config/mock-large.yaml"])
def test_presets_validate(root, preset):
    path = root / preset
    if not path.exists():
        pytest.skip(f"{preset} not present")
    cfg = load_config(path)
    assert cfg["mode"] in ("mock", "sdss")


def _bad(raw, path, value):
    cfg = copy.deepcopy(raw)
    node = cfg
    for key in path[:-1]:
        node = node[key]
    if value is KeyError:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return cfg


@pytest.mark.parametrize(
    "path, value, expected",
    [
        (["mode"], "real", ["mode", "'mock'", "'sdss'"]),
        (["cutouts", "resampler"], "bilinear", ["cutouts.resampler", "'swarp'", "'native'"]),
        (["training", "epochs"], "ten", ["training.epochs", "wrong type", "integer"]),
        (["training", "epochs"], 0, ["training.epochs", "out of range", ">= 1"]),
        (["dataset", "validation_fraction"], 0.9, ["dataset.validation_fraction", "< 0.5"]),
        (["cutouts", "colour"], "blue", ["unknown key 'colour'", "cutouts", "resampler"]),
        (["tiles", "nside"], 3, ["tiles.nside", "allowed values", "64"]),
        (["selection"], KeyError, ["required", "selection"]),
        (["training", "network"], "huge", ["training.network", "'full'", "'reduced'"]),
        (["bins", "z_max"], 0.0, ["bins.z_max"]),
    ],
)
def test_schema_rejects_bad_configs_with_one_clear_message(raw, path, value, expected):
    with pytest.raises(ConfigError) as err:
        validate_config(_bad(raw, path, value))
    msg = str(err.value)
    for part in expected:
        assert part in msg, f"{part!r} not in {msg!r}"


def test_table2_row_must_name_a_trial(raw):
    cfg = copy.deepcopy(raw)
    cfg["table2"][0]["trial"] = "nonexistent"
    with pytest.raises(ConfigError, match=r"table2\[0\]\.trial = 'nonexistent'"):
        validate_config(cfg)


def test_snakemake_stops_before_any_job_on_a_bad_config(root):
    """A wrong value on the command line stops the run with the key named."""
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--config", "mode=real"],
        capture_output=True, text=True, cwd=root, timeout=300,
    )
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "mode = 'real' is not allowed" in out
    assert "'mock', 'sdss'" in out
