"""The workflow's shape: conda envs on every rule, exact pins, lint, dry runs of every preset."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import yaml

# conda-forge names of packages whose PyPI name differs.
CONDA_TO_PYPI = {"pytorch": "torch", "astropy-healpix": "astropy-healpix", "galsim": "galsim"}
# conda-only packages with no entry in the Python lock.
CONDA_ONLY = {"python", "astromatic-swarp", "pip", "latexmk", "poppler", "texlive-core", "tectonic", "sqlite"}


def _norm(name):
    return re.sub(r"[-_.]+", "-", name).lower()


@pytest.fixture(scope="module")
def lock(root):
    pins = {}
    for line in (root / "requirements.lock").read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            assert version, f"requirements.lock: {line!r} is not pinned with =="
            pins[_norm(name)] = version
    return pins


def _rule_blocks(text):
    """(name, body) of every rule/checkpoint in a .smk file."""
    parts = re.split(r"^(?:rule|checkpoint)\s+(\w+)\s*:", text, flags=re.M)
    return list(zip(parts[1::2], parts[2::2]))


def _rule_files(root):
    return [root / "Snakefile", *sorted((root / "workflow" / "rules").glob("*.smk"))]


def test_every_executing_rule_names_an_existing_conda_env(root):
    checked = 0
    for path in _rule_files(root):
        for name, body in _rule_blocks(path.read_text()):
            executes = re.search(r"^\s+(shell|script|run|notebook|wrapper)\s*:", body, flags=re.M)
            if not executes:
                continue  # a target rule: nothing runs in it
            m = re.search(r"^\s+conda:\s*\n?\s*[\"']([^\"']+)[\"']", body, flags=re.M)
            assert m, f"rule {name} in {path.name} has no conda: directive"
            env = (path.parent / m.group(1)).resolve()
            assert env.exists(), f"rule {name}: conda env {m.group(1)} not found"
            assert env.parent.name == "envs"
            checked += 1
    assert checked > 0


def _env_pins(env_path):
    env = yaml.safe_load(env_path.read_text())
    for dep in env.get("dependencies", []):
        if isinstance(dep, dict):
            for pip_dep in dep.get("pip", []):
                yield "pip", pip_dep
        else:
            yield "conda", dep


def test_env_files_pin_exact_versions_equal_to_the_lock(root, lock):
    envs = sorted((root / "envs").glob("*.yaml"))
    assert envs, "no conda env files in envs/"
    for env_path in envs:
        env = yaml.safe_load(env_path.read_text())
        assert "conda-forge" in env.get("channels", []), f"{env_path.name}: conda-forge channel missing"
        for kind, dep in _env_pins(env_path):
            if kind == "pip":
                m = re.fullmatch(r"([A-Za-z0-9_.\-\[\]]+)==([^=<>!~*\s]+)", dep.strip())
                assert m, f"{env_path.name}: pip dependency {dep!r} is not pinned with =="
                name, version = _norm(m.group(1).split("[")[0]), m.group(2)
            else:
                m = re.fullmatch(r"([A-Za-z0-9_.\-]+)=([^=<>!~*\s]+)", dep.strip())
                assert m, f"{env_path.name}: conda dependency {dep!r} is not pinned to one exact version (name=version)"
                name, version = _norm(CONDA_TO_PYPI.get(m.group(1), m.group(1))), m.group(2)
                if m.group(1) == "python":
                    assert version.startswith("3.11"), f"{env_path.name}: python={version}, the lock is for 3.11"
            if name in lock:
                assert version == lock[name], (
                    f"{env_path.name}: {name}={version} but requirements.lock pins {lock[name]}")
            else:
                assert kind == "conda" and m.group(1) in CONDA_ONLY, (
                    f"{env_path.name}: {name} is not in requirements.lock (and not a known conda-only package)")


def _snakemake(root, *args, timeout=600):
    return subprocess.run([sys.executable, "-m", "snakemake", *args], capture_output=True, text=True,
                          cwd=root, timeout=timeout)


def test_lint_reports_nothing(root):
    proc = _snakemake(root, "--lint")
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "Lints for" not in out, out


@pytest.mark.parametrize("preset", [None, "config/mock-large.yaml", "config/sdss-dr12.yaml"])
def test_dry_run_of_the_full_dag(root, preset):
    args = ["-n", "--forceall", "--quiet", "rules"]  # the full DAG, whatever is built
    if preset:
        if not (root / preset).exists():
            pytest.skip(f"{preset} not present")
        args += ["--configfile", preset]
    proc = _snakemake(root, *args)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout + proc.stderr
    assert "paper" in out
