"""The paper's figures: one module per figure, shared style and helpers in ``common``.

A figure is a module ``figNN_name.py`` of this package (its file name is its
name); it declares ``INPUTS`` (option name -> path, a literal dict), ``CONFIG``
(the config sections its ``make`` reads, a literal tuple: the workflow passes
it those and no others, and reruns it only when one of them changes) and
``make(inputs, cfg, log)`` returning a matplotlib figure. ``FIGURES`` lists
them by file (the one list: the workflow's ``figure`` rule and the paper take
it from here); ``python -m photoz figure NAME [options]`` runs one
(:func:`photoz.figures.common.run`). An ``INPUTS`` path may name a trial by
its role in braces, ``{main}`` or ``{noebv}`` (:data:`ROLES`, resolved from the
config by :mod:`photoz.trials`); an input whose role has no trial in the
config is left out, and the figure draws without it. :func:`figure_inputs`
reads the declaration from the module's source without importing it (no
matplotlib at workflow parse time).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from photoz import trials

__all__ = ["FIGURES", "ROLES", "figure_source", "declared_inputs", "declared_config", "resolve_inputs",
           "figure_inputs"]

#: Figure name -> module, one per ``fig*.py`` file of this package, in file-name order.
FIGURES = {p.stem: f"{__name__}.{p.stem}" for p in sorted(Path(__file__).parent.glob("fig*.py"))}

#: Roles an ``INPUTS`` path may name (``{role}``) -> the function giving the config's trial of that role (or None).
ROLES = {"main": trials.main_trial, "noebv": trials.noebv_trial}


def figure_source(name):
    """The source file of figure ``name`` (``src/photoz/figures/NAME.py``)."""
    if name not in FIGURES:
        raise KeyError(f"unknown figure {name!r}; known: {', '.join(FIGURES)}")
    return Path(__file__).with_name(FIGURES[name].rsplit(".", 1)[1] + ".py")


def _declared(name, var, kind, what):
    """The literal ``var = ...`` of figure ``name``'s source (not imported): a ``kind`` of str ``what``."""
    path = figure_source(name)
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == var for t in node.targets):
            try:
                value = ast.literal_eval(node.value)
            except ValueError as err:
                raise ValueError(f"{path}: {var} must be a literal {what} ({err})") from None
            items = value.values() if isinstance(value, dict) else value
            if not isinstance(value, kind) or not all(isinstance(v, str) for v in items):
                raise ValueError(f"{path}: {var} must be a literal {what}")
            return value
    raise ValueError(f"{path}: no {var} declaration")


def declared_inputs(name):
    """The ``INPUTS`` declaration of figure ``name`` (option -> path, roles unresolved), read from its source."""
    return _declared(name, "INPUTS", dict, "dict of option -> path")


def declared_config(name):
    """The ``CONFIG`` declaration of figure ``name``: the config sections its ``make`` reads."""
    return _declared(name, "CONFIG", tuple, "tuple of config section names")


def resolve_inputs(declared, cfg, figure="figure"):
    """``declared`` (option -> path) with every ``{role}`` replaced by the config's trial of that role.

    An input naming a role the config has no trial for is left out.
    """
    out = {}
    for key, path in declared.items():
        roles = re.findall(r"{(\w*)}", path)
        unknown = sorted(set(roles) - set(ROLES))
        if unknown:
            raise ValueError(f"{figure}: INPUTS[{key!r}] = {path!r} names unknown role(s) {unknown}; known: {', '.join(ROLES)}")
        if roles and "trials" not in cfg:
            raise ValueError(f"{figure}: the config has no trials to resolve {path!r}; give --{key.replace('_', '-')}")
        names = {r: ROLES[r](cfg) for r in set(roles)}
        if all(v is not None for v in names.values()):
            out[key] = path.format(**names)
    return out


def figure_inputs(name, cfg):
    """The input files of figure ``name`` for config ``cfg`` (option -> path)."""
    return resolve_inputs(declared_inputs(name), cfg, name)
