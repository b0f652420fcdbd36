"""Configuration: loading, JSON-schema validation with one clear message, defaults.

The schema is ``workflow/schemas/config.schema.yaml``. ``validate_config``
returns a copy of the config with the schema's defaults filled in, or raises
``ConfigError`` naming the offending key and what it allows.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema
import yaml

__all__ = ["ConfigError", "SCHEMA_PATH", "EXECUTION_KEYS", "load_config", "validate_config", "load_schema",
           "result_settings", "coerce_overrides", "run_dir", "RUN_DIRS"]

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_PATH = ROOT / "workflow" / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    """The configuration does not match the schema."""


#: Keys that say how a step runs, never what it computes: resources (memory,
#: runtime, threads), device and speed settings. They are passed to the
#: commands but are never a rule's rerun trigger (``result_settings`` leaves
#: them out), so changing them redoes no work. One list, used by every rule.
EXECUTION_KEYS = {
    "training": ("device", "num_threads", "amp", "channels_last", "compile", "fused", "cuda_graph", "resident", "resident_dtype",
                 "eval_batch_size", "stack_members", "mem_mb", "runtime_min"),
    "cutouts": ("threads", "chunk_galaxies"),
    "sdss": ("max_requests_per_minute", "max_retries", "timeout_s", "parallel_downloads", "network_jobs"),
}


def result_settings(cfg, section=None):
    """A deep copy of ``cfg`` (or of its ``section``) without the ``EXECUTION_KEYS``.

    The values that change a step's output: what a rule's params hold, so
    that Snakemake reruns a job when one of them changes and only then.
    """
    if section is not None:
        out = copy.deepcopy(cfg[section])
        if isinstance(out, dict):
            for key in EXECUTION_KEYS.get(section, ()):
                out.pop(key, None)
        return out
    out = copy.deepcopy(dict(cfg))
    for sec, keys in EXECUTION_KEYS.items():
        if isinstance(out.get(sec), dict):
            for key in keys:
                out[sec].pop(key, None)
    return out


def load_schema(path=SCHEMA_PATH):
    with open(path) as fh:
        return yaml.safe_load(fh)


def _key(path):
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(top level)"


def _describe(err):
    """One human sentence for a jsonschema error: the key and what is allowed."""
    where = _key(err.absolute_path)
    v = err.validator
    s = err.schema if isinstance(err.schema, dict) else {}
    if v == "additionalProperties":
        allowed = sorted(s.get("properties", {}))
        extra = sorted(set(err.instance) - set(allowed)) if isinstance(err.instance, dict) else []
        return f"unknown key {', '.join(repr(k) for k in extra)} in {where}; allowed keys: {', '.join(allowed)}"
    if v == "enum":
        return f"{where} = {err.instance!r} is not allowed; allowed values: {', '.join(map(repr, s['enum']))}"
    if v == "type":
        return f"{where} = {err.instance!r} has the wrong type; expected {s['type']}"
    if v in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"):
        lo = s.get("minimum", s.get("exclusiveMinimum"))
        hi = s.get("maximum", s.get("exclusiveMaximum"))
        rng = f"{'>=' if 'minimum' in s else '>'} {lo}" if lo is not None else ""
        if hi is not None:
            rng += (" and " if rng else "") + f"{'<=' if 'maximum' in s else '<'} {hi}"
        return f"{where} = {err.instance!r} is out of range; allowed: {rng}"
    if v == "required":
        return f"{where} misses a required key: {err.message}"
    return f"{where}: {err.message}"


def _fill_defaults(instance, schema, root):
    """Fill ``default`` values of the schema into ``instance`` (in place)."""
    if "$ref" in schema:
        ref = schema["$ref"]
        node = root
        for part in ref.lstrip("#/").split("/"):
            node = node[part]
        schema = node
    if isinstance(instance, dict):
        for key, sub in schema.get("properties", {}).items():
            if key not in instance and "default" in sub:
                instance[key] = copy.deepcopy(sub["default"])
            if key in instance:
                _fill_defaults(instance[key], sub, root)
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            for key in instance:
                if key not in schema.get("properties", {}):
                    _fill_defaults(instance[key], extra, root)
    elif isinstance(instance, list) and isinstance(schema.get("items"), dict):
        for item in instance:
            _fill_defaults(item, schema["items"], root)


def fill_section(name, values, schema=None):
    """A copy of ``values`` (one config section, e.g. ``"mock"`` or the list ``"table2"``) with the schema's defaults filled in.

    For code that builds one section by hand (tests, benchmarks): the section as the
    workflow's validated config would hold it. Nothing is validated.
    """
    schema = load_schema() if schema is None else schema
    out = copy.deepcopy(values)
    _fill_defaults(out, schema["properties"][name], schema)
    return out


def _selection_names(cfg):
    """Selection names a trial may use: ``cv_{train,test}`` and ``{name}_{train,test}`` per dataset selection."""
    prefixes = ["cv"] + list(cfg["dataset"]["selections"])
    return [f"{p}_{side}" for p in prefixes for side in ("train", "test")]


def _boxes(node, where):
    """Every (key path, mapping) below ``node`` holding ``X_min``/``X_max`` pairs."""
    if isinstance(node, dict):
        if any(k.endswith("_min") and k[:-4] + "_max" in node for k in node):
            yield where, node
        for k, v in node.items():
            yield from _boxes(v, f"{where}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _boxes(v, f"{where}[{i}]")


def _check_boxes(cfg):
    """Every region box (``regions``, ``mock.suspect_zone``) has min <= max on each axis."""
    bad = []
    for section in ("regions", "mock"):
        for where, box in _boxes(cfg.get(section), section):
            for k, lo in box.items():
                hi_key = k[:-4] + "_max" if k.endswith("_min") else None
                if hi_key in box and isinstance(lo, (int, float)) and isinstance(box[hi_key], (int, float)) \
                        and lo > box[hi_key]:
                    bad.append(f"{where}.{k} = {lo} is above {where}.{hi_key} = {box[hi_key]}")
    if bad:
        more = f" (and {len(bad) - 1} more: {'; '.join(bad[1:4])})" if len(bad) > 1 else ""
        raise ConfigError(f"inverted region box: {bad[0]}{more}; a box needs min <= max "
                          f"(an RA range across 0 is written with a negative ra_min, e.g. -60 .. 60)")


def _check_swarp_check(cfg):
    """The SWarp check of a native run rereads the frames, so they must outlive the cutouts."""
    cut = cfg["cutouts"]
    n = cut["swarp_check_galaxies"]
    if cut["resampler"] == "native" and n > 0 and cfg["tiles"]["delete_frames_after_cutouts"]:
        raise ConfigError(
            f"cutouts.swarp_check_galaxies = {n} with cutouts.resampler = 'native' remakes that many cutouts with "
            "SWarp from the frames after the cutouts, but tiles.delete_frames_after_cutouts = true deletes them; "
            "set tiles.delete_frames_after_cutouts: false (keep the frames), or cutouts.swarp_check_galaxies: 0 "
            "(no check), or cutouts.resampler: swarp")


def _cross_checks(cfg):
    """Checks a JSON schema cannot express: references between sections, region boxes."""
    errors = []
    nets = cfg["networks"]
    if cfg["training"]["network"] not in nets:
        raise ConfigError(f"training.network = {cfg['training']['network']!r} is not a key of networks; allowed values: {', '.join(map(repr, nets))}")
    for name, trial in cfg["trials"].items():
        if trial.get("network", cfg["training"]["network"]) not in nets:
            raise ConfigError(f"trials.{name}.network = {trial['network']!r} is not a key of networks; allowed values: {', '.join(map(repr, nets))}")
    sels = _selection_names(cfg)
    for name, trial in cfg["trials"].items():
        for side in ("train", "test"):
            if trial[side] not in sels:
                errors.append(f"trials.{name}.{side} = {trial[side]!r} is not a selection; allowed values: "
                              f"{', '.join(map(repr, sels))} (cv_* or a key of dataset.selections + _train/_test)")
    for name, trial in cfg["trials"].items():
        for key in ("train_size", "train_fraction"):
            if key in trial and (trial["train"] != "cv_train" or trial["folds"] != "single"):
                errors.append(f"trials.{name}.{key} needs train: cv_train and folds: single "
                              f"(a nested subset of fold 0's training side); got train: {trial['train']!r}, folds: {trial['folds']!r}")
        frac = trial.get("train_fraction")
        n_folds = cfg["dataset"]["n_folds"]
        if frac is not None and frac > (n_folds - 1) / n_folds:
            errors.append(f"trials.{name}.train_fraction = {frac} exceeds the training side of a fold "
                          f"({n_folds - 1}/{n_folds} of the galaxies with dataset.n_folds = {n_folds})")
    for i, name in enumerate(cfg["learning_curve"]):
        trial = cfg["trials"].get(name)
        if trial is None:
            errors.append(f"learning_curve[{i}] = {name!r} is not a key of trials; allowed values: {', '.join(map(repr, cfg['trials']))}")
        elif (trial["train"], trial["test"]) != ("cv_train", "cv_test"):
            errors.append(f"learning_curve[{i}] = {name!r} must train on cv_train and test on cv_test (the same "
                          f"fold-0 test galaxies for every point); it has train: {trial['train']!r}, test: {trial['test']!r}")
    grid = cfg["knn"].get("k_grid")
    if grid and list(grid) != sorted(grid):
        errors.append(f"knn.k_grid = {grid} must be sorted in increasing order")
    from photoz.published import TABLE2_KEYS

    for i, row in enumerate(cfg["table2"]):
        if row["trial"] not in cfg["trials"]:
            errors.append(f"table2[{i}].trial = {row['trial']!r} is not a key of trials; allowed values: {', '.join(map(repr, cfg['trials']))}")
        if row.get("published") and row["published"] not in TABLE2_KEYS:
            errors.append(f"table2[{i}].published = {row['published']!r} is not a published Table 2 row; "
                          f"allowed values: {', '.join(map(repr, TABLE2_KEYS))}")
    if errors:
        more = f" (and {len(errors) - 1} more: {'; '.join(errors[1:])})" if len(errors) > 1 else ""
        raise ConfigError(f"invalid configuration: {errors[0]}{more}")
    _check_boxes(cfg)
    _check_swarp_check(cfg)
    b = cfg["bins"]
    if not b["z_min"] < b["z_max"]:
        raise ConfigError(f"bins.z_min = {b['z_min']} must be below bins.z_max = {b['z_max']}")
    sel = cfg["selection"]
    if not sel["z_min"] < sel["z_max"]:
        raise ConfigError(f"selection.z_min = {sel['z_min']} must be below selection.z_max = {sel['z_max']}")


def validate_config(config, schema=None):
    """Validate ``config`` (a mapping) and return a copy with defaults filled in."""
    schema = load_schema() if schema is None else schema
    cfg = json.loads(json.dumps(dict(config)))  # plain, deep copy
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(cfg), key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))))
    if errors:
        msgs = [_describe(e) for e in errors]
        more = f" (and {len(msgs) - 1} more: {'; '.join(msgs[1:4])})" if len(msgs) > 1 else ""
        raise ConfigError(f"invalid configuration: {msgs[0]}{more}")
    _fill_defaults(cfg, schema, schema)
    _cross_checks(cfg)
    return cfg


def _resolve(schema, root):
    """``schema`` with its ``$ref`` chain followed (JSON pointers into ``root``)."""
    while "$ref" in schema:
        node = root
        for part in schema["$ref"].lstrip("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def _subschema(schema, key, root):
    """The schema of ``key`` below ``schema`` (following ``$ref``, properties, additionalProperties, items)."""
    schema = _resolve(schema, root)
    if isinstance(key, int):
        return schema.get("items", {}) if isinstance(schema.get("items"), dict) else {}
    if key in schema.get("properties", {}):
        return schema["properties"][key]
    extra = schema.get("additionalProperties")
    return extra if isinstance(extra, dict) else {}


def _typed(value, schema, root):
    """``value`` (a string from the command line) as the scalar type the schema asks, if it parses."""
    schema = _resolve(schema, root)
    kinds = schema.get("type")
    kinds = [kinds] if isinstance(kinds, str) else list(kinds or [])
    if "string" in kinds or not kinds:
        return value
    for kind in kinds:
        try:
            if kind == "integer":
                return int(value)
            if kind == "number":
                return float(value)
        except ValueError:
            continue
        if kind == "boolean" and value.lower() in ("true", "false"):
            return value.lower() == "true"
        if kind == "null" and value.lower() in ("null", "none", "~"):
            return None
    return value


def coerce_overrides(config, overrides, schema=None):
    """Give ``snakemake --config`` values the types the schema asks for (in place; returns ``config``).

    Snakemake parses a nested ``--config 'training={epochs: 2}'`` with YAML's
    base loader, so every nested value arrives as a string (``"2"``) and would
    fail validation. Each string leaf of ``overrides`` (Snakemake's
    ``--config`` mapping) whose schema type is integer, number, boolean or
    null is converted in ``config`` when it parses as that type; anything
    else is left for validation to report. Values from ``--configfile`` are
    never touched.
    """
    schema = load_schema() if schema is None else schema

    def walk(over, cfg, sch):
        items = over.items() if isinstance(over, dict) else enumerate(over) if isinstance(over, list) else ()
        for key, value in items:
            try:
                current = cfg[key]
            except (KeyError, IndexError, TypeError):
                continue
            sub = _subschema(sch, key, schema)
            if isinstance(value, (dict, list)):
                walk(value, current, sub)
            elif isinstance(value, str) and isinstance(current, str):
                cfg[key] = _typed(current, sub, schema)

    walk(overrides or {}, config, schema)
    return config


#: The working directory of each mode under ``run_dir: auto``.
RUN_DIRS = {"mock": ".", "sdss": "runs/sdss"}


def run_dir(cfg):
    """The run's working directory (``run_dir``; ``auto``: ``RUN_DIRS[mode]``), relative to the launch folder."""
    value = cfg["run_dir"]
    return RUN_DIRS[cfg["mode"]] if value == "auto" else value


def load_config(path="config.yaml", overrides=None):
    """Read a YAML config (merged over the embedded default) and validate it."""
    with open(ROOT / "config.yaml") as fh:
        cfg = yaml.safe_load(fh)
    if Path(path).resolve() != (ROOT / "config.yaml").resolve():
        with open(path) as fh:
            _merge(cfg, yaml.safe_load(fh) or {})
    if overrides:
        _merge(cfg, overrides)
    return validate_config(cfg)


def _merge(base, update):
    """Merge ``update`` into ``base`` as Snakemake merges --configfile files."""
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value
    return base
