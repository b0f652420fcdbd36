"""The package reads top to bottom: no function over 60 lines or 8 parameters (issue 30)."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "photoz"
MAX_LINES, MAX_PARAMS = 60, 8


def _functions():
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield path.relative_to(SRC.parent), node


def _n_params(fn):
    a = fn.args
    names = [x.arg for x in a.posonlyargs + a.args + a.kwonlyargs]
    return len(names) - (1 if names and names[0] in ("self", "cls") else 0)


def test_no_function_longer_than_a_screen():
    long = [f"{p}:{fn.lineno} {fn.name} ({fn.end_lineno - fn.lineno + 1} lines)" for p, fn in _functions()
            if fn.end_lineno - fn.lineno + 1 > MAX_LINES]
    assert not long, "split these into named steps: " + "; ".join(long)


def test_no_function_with_more_than_eight_parameters():
    many = [f"{p}:{fn.lineno} {fn.name} ({_n_params(fn)} parameters)" for p, fn in _functions()
            if _n_params(fn) > MAX_PARAMS]
    assert not many, "pass the validated config section (or a small dataclass) instead: " + "; ".join(many)


#: ``.get(key, default)`` calls on rows of result tables whose column is named like a config key
RESULT_ROWS = {("learning_curve.py", "c"), ("wording.py", "main")}


def test_no_config_default_restated_in_code():
    """Defaults live in the schema alone: no ``x.get("<config key>", <literal>)`` (issue 30)."""
    import yaml

    schema = yaml.safe_load((SRC.parents[1] / "workflow" / "schemas" / "config.schema.yaml").read_text())
    keys = set()

    def walk(n):
        if isinstance(n, dict):
            for k, v in (n.get("properties") or {}).items():
                keys.add(k)
                walk(v)
            for k in ("items", "additionalProperties"):
                walk(n.get(k))
            for v in (n.get("$defs") or {}).values():
                walk(v)

    walk(schema)
    found = []
    for path in sorted(SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get"
                    and len(node.args) == 2 and isinstance(node.args[0], ast.Constant) and node.args[0].value in keys):
                continue
            default = node.args[1]
            literal = isinstance(default, (ast.List, ast.Dict, ast.Tuple)) or (
                isinstance(default, ast.Constant) and default.value is not None)
            receiver = ast.unparse(node.func.value)
            if literal and (path.name, receiver) not in RESULT_ROWS:
                found.append(f"{path.relative_to(SRC.parent)}:{node.lineno} {ast.unparse(node)}")
    assert not found, "read the validated config (the schema fills its defaults): " + "; ".join(found)
