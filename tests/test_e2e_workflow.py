"""The whole chain, end to end, on the smallest configuration.

A copy of the repository's tracked files (as a fresh clone would have them) runs
`snakemake` from the mock sky to `paper/ms.pdf` with `tests/data/e2e-config.yaml`
merged over the embedded default. Then:

* the paper prints the numbers of `results/table2.csv`;
* a second run has nothing to do;
* a run killed in the middle of the cutout rules resumes with
  `--rerun-incomplete` and produces byte-identical shards.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

E2E_CONFIG = "tests/data/e2e-config.yaml"


def _snakemake(cwd, *args, timeout=1500, check=True):
    cmd = [sys.executable, "-m", "snakemake", "--cores", "2", *args, "--configfile", E2E_CONFIG]
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        log = (cwd / "e2e-failure.log")
        log.write_text(proc.stdout + proc.stderr)
        raise AssertionError(f"snakemake {' '.join(args)} failed:\n{(proc.stdout + proc.stderr)[-6000:]}")
    return proc


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, root):
    if shutil.which("SWarp") is None or shutil.which("latexmk") is None:
        pytest.skip("SWarp or latexmk missing (make setup installs them)")
    dest = tmp_path_factory.mktemp("e2e") / "repo"
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=root, capture_output=True,
                           text=True, check=True).stdout.split()
    for rel in files:
        src = root / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    # The real SDSS field is found beside the checkout, as in the repository.
    started = time.time()
    _snakemake(dest)
    (dest / "e2e-seconds.txt").write_text(f"{time.time() - started:.0f}\n")
    return dest


def _plain(text):
    return re.sub(r"\s+", " ", text.replace("\u2212", "-"))


def test_paper_prints_the_numbers_of_table2(run_dir):
    pdf = run_dir / "paper" / "ms.pdf"
    assert pdf.stat().st_size > 50_000
    figures = sorted(p.name for p in (run_dir / "results" / "figures").glob("*.png"))
    assert len(figures) >= 14, figures
    text = _plain(subprocess.run(["pdftotext", str(pdf), "-"], capture_output=True, text=True, check=True).stdout)
    t2 = pd.read_csv(run_dir / "results" / "table2.csv")
    main = t2[(t2["estimator"] == "cnn") & (t2["subset"] == "all") & (t2["trial"] == "main")].iloc[0]
    m = re.search(r"σMAD = ([0-9.]+), a bias of\s*(-?[0-9.]+) and an outlier rate η = ([0-9.]+) %", text)
    assert m, "the abstract's sentence with the main numbers is not in the PDF"
    assert float(m.group(1)) == pytest.approx(round(main["sigma_mad"], 5), abs=1e-9)
    assert float(m.group(2)) == pytest.approx(round(main["bias"], 5), abs=1e-9)
    assert float(m.group(3)) == pytest.approx(round(main["eta"], 2), abs=1e-9)
    for row in t2.dropna(subset=["sigma_mad"]).itertuples():
        assert f"{row.sigma_mad:.5f}" in text, row.label
    assert "synthetic sky" in text


def test_second_run_has_nothing_to_do(run_dir):
    proc = _snakemake(run_dir, "-n")
    assert "Nothing to be done" in proc.stdout + proc.stderr


def _digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(Path(folder).glob("*")) if p.is_file()}


def test_killed_cutouts_resume_to_identical_shards(run_dir):
    before = _digest(run_dir / "results" / "shards")
    assert any(name.startswith("shard-") for name in before)
    shutil.rmtree(run_dir / "results" / "shards")
    for p in (run_dir / "results" / "cutouts").glob("group-*"):
        p.unlink()
    shutil.rmtree(run_dir / "logs" / "cutouts", ignore_errors=True)
    cmd = [sys.executable, "-m", "snakemake", "--cores", "1", "results/shards/manifest.json", "--configfile", E2E_CONFIG]
    proc = subprocess.Popen(cmd, cwd=run_dir, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + 300
    log = run_dir / "logs" / "cutouts"
    try:
        # Wait until a cutouts job is running, then kill the whole run.
        while time.time() < deadline and proc.poll() is None:
            if any(p.stat().st_size > 0 for p in log.glob("*.log")) and not (
                    run_dir / "results" / "cutouts" / "group-1.npz").exists():
                break
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert not (run_dir / "results" / "shards" / "manifest.json").exists(), "the run finished before it was killed"
    _snakemake(run_dir, "--unlock")  # the killed run left its lock behind
    _snakemake(run_dir, "results/shards/manifest.json", "--rerun-incomplete")
    assert _digest(run_dir / "results" / "shards") == before
