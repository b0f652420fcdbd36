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

__all__ = ["ConfigError", "SCHEMA_PATH", "load_config", "validate_config", "load_schema"]

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_PATH = ROOT / "workflow" / "schemas" / "config.schema.yaml"


class ConfigError(ValueError):
    """The configuration does not match the schema."""


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


def _cross_checks(cfg):
    """Checks a JSON schema cannot express: references between sections."""
    nets = cfg["networks"]
    if cfg["training"]["network"] not in nets:
        raise ConfigError(f"training.network = {cfg['training']['network']!r} is not a key of networks; allowed values: {', '.join(map(repr, nets))}")
    for name, trial in cfg["trials"].items():
        if trial.get("network", cfg["training"]["network"]) not in nets:
            raise ConfigError(f"trials.{name}.network = {trial['network']!r} is not a key of networks; allowed values: {', '.join(map(repr, nets))}")
    for i, row in enumerate(cfg["table2"]):
        if row["trial"] not in cfg["trials"]:
            raise ConfigError(f"table2[{i}].trial = {row['trial']!r} is not a key of trials; allowed values: {', '.join(map(repr, cfg['trials']))}")
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
