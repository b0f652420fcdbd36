"""Training settings for the tests (and benchmarks) that build a ``TrainConfig`` by hand.

``DEFAULT_SETTINGS`` is the embedded default's ``training`` section with its network and bins
(``config.yaml``, the schema's defaults filled in), as ``TrainConfig`` fields. It is restated
here because the network's tests also run on the device machine, which has no YAML reader;
``tests/test_nn_settings.py`` checks it against the config, so it cannot drift.
"""

from __future__ import annotations

from photoz.nn.train import TrainConfig

DEFAULT_SETTINGS = {
    "epochs": 20, "max_iterations": 120000, "min_iterations": 0, "batch_size": 32, "learning_rate": 0.001, "label_sigma_z": 0.01,
    "average_fraction": 0.25,
    "device": "auto", "num_threads": 1, "width": 0.125, "dense": 128, "ebv_input": True,
    "n_bins": 180, "z_min": 0.0, "z_max": 0.4, "amp": "auto", "channels_last": "auto", "compile": "auto",
    "resident": "auto", "resident_dtype": "float32", "eval_batch_size": 1024, "fused": "auto", "cuda_graph": "auto",
}

def train_config(**override):
    """``TrainConfig`` of the default's settings with ``override`` applied."""
    return TrainConfig(**{**DEFAULT_SETTINGS, **override})


def config_json(**override):
    """The ``--config-json`` of ``photoz train`` for the default's settings with ``override`` applied."""
    return train_config(**override).sections()
