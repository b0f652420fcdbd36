"""The paper's figures: one module per figure (``main(argv)``), shared style and helpers in ``common``.

``python -m photoz figure NAME [options]`` runs one of them; ``FIGURES`` lists
them (the one list: the workflow's ``figure`` rule and the paper take it from
here). Each module declares its input files in ``INPUTS`` (option name ->
path, a literal dict); :func:`figure_inputs` reads that declaration from the
module's source without importing it (no matplotlib at workflow parse time).
"""

from __future__ import annotations

import ast
from pathlib import Path

__all__ = ["FIGURES", "figure_source", "figure_inputs"]

FIGURES = {
    "fig01_sky_and_nz": "photoz.figures.fig01_sky_and_nz",
    "fig02_gallery": "photoz.figures.fig02_gallery",
    "fig04_architecture": "photoz.figures.fig04_architecture",
    "fig05_protocol": "photoz.figures.fig05_protocol",
    "fig06_dz": "photoz.figures.fig06_dz",
    "fig07_zphot_zspec": "photoz.figures.fig07_zphot_zspec",
    "fig08_bias": "photoz.figures.fig08_bias",
    "fig09_pdfs": "photoz.figures.fig09_pdfs",
    "fig10_pit": "photoz.figures.fig10_pit",
    "fig11_ebv_inclination": "photoz.figures.fig11_ebv_inclination",
    "fig12_sky_maps": "photoz.figures.fig12_sky_maps",
    "fig13_mean_pdfs": "photoz.figures.fig13_mean_pdfs",
    "fig14_snr_psf": "photoz.figures.fig14_snr_psf",
    "fig15_learning_curve": "photoz.figures.fig15_learning_curve",
    "figA_image_quality": "photoz.figures.figA_image_quality",
}


def figure_source(name):
    """The source file of figure ``name`` (``src/photoz/figures/NAME.py``)."""
    if name not in FIGURES:
        raise KeyError(f"unknown figure {name!r}; known: {', '.join(FIGURES)}")
    return Path(__file__).with_name(FIGURES[name].rsplit(".", 1)[1] + ".py")


def figure_inputs(name):
    """The ``INPUTS`` declaration of figure ``name`` (option -> path), read from its source."""
    path = figure_source(name)
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "INPUTS" for t in node.targets):
            try:
                value = ast.literal_eval(node.value)
            except ValueError as err:
                raise ValueError(f"{path}: INPUTS must be a literal dict of option -> path ({err})") from None
            if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
                raise ValueError(f"{path}: INPUTS must be a literal dict of option -> path")
            return value
    raise ValueError(f"{path}: no INPUTS declaration")
