"""The SLURM profile (profiles/slurm) against real SLURM daemons.

`tools/slurm/cluster.sh start` installs (apt, as root) and starts a single-node
cluster on loopback: munged, MariaDB, slurmdbd, slurmctld, slurmd, with two
partitions (`debug` default, `photoz`), two accounts (`root` default, `photoz`)
and one declared GPU. The tests run Snakemake with a copy of the profile whose
account and partition are filled in with the non-default `photoz` ones (what a
user does), then check the scheduler's own records: the job completion log
(jobcomp/filetxt) and sacct. Everything skips with the reason when the daemons
cannot start. A cluster that is already up is reused and left running.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CLUSTER_SH = ROOT / "tools" / "slurm" / "cluster.sh"
PROFILE = ROOT / "profiles" / "slurm" / "config.v8+.yaml"
VENV_BIN = Path(sys.executable).parent
STATE = Path(os.environ.get("PHOTOZ_SLURM_DIR", "/tmp/photoz-slurm"))
ACCOUNT = PARTITION = "photoz"

pytestmark = [pytest.mark.slurm, pytest.mark.slow]


def _env():
    env = dict(os.environ)
    env["PHOTOZ_SLURM_DIR"] = str(STATE)
    env["SLURM_CONF"] = str(STATE / "etc" / "slurm.conf")
    # Jobs run `python -m snakemake` from PATH: the venv must come first.
    env["PATH"] = f"{VENV_BIN}:{env.get('PATH', '')}:/usr/sbin:/sbin"
    for key in [k for k in env if k.startswith(("SLURM_JOB", "SBATCH_", "SALLOC_"))]:
        del env[key]
    return env


@pytest.fixture(scope="module")
def slurm():
    """A running test cluster (started here, or reused); the client environment."""
    if sys.platform != "linux" or shutil.which("bash") is None:
        pytest.skip("the test SLURM cluster needs Linux and bash")
    env = _env()
    up = subprocess.run(["bash", str(CLUSTER_SH), "status"], env=env, capture_output=True, text=True)
    started = False
    if up.returncode != 0:
        try:
            res = subprocess.run(["bash", str(CLUSTER_SH), "start"], env=env, capture_output=True,
                                 text=True, timeout=600)
        except subprocess.TimeoutExpired:
            subprocess.run(["bash", str(CLUSTER_SH), "stop"], env=env, capture_output=True)
            pytest.skip("SLURM daemons did not start within 600 s (tools/slurm/cluster.sh start)")
        if res.returncode != 0:
            subprocess.run(["bash", str(CLUSTER_SH), "stop"], env=env, capture_output=True)
            tail = (res.stderr or res.stdout).strip().splitlines()[-6:]
            pytest.skip("cannot start the SLURM daemons (tools/slurm/cluster.sh start): " + " | ".join(tail))
        started = True
    yield env
    if started:
        subprocess.run(["bash", str(CLUSTER_SH), "stop"], env=env, capture_output=True, timeout=120)


def _node_cpus(env):
    out = subprocess.run(["sinfo", "-h", "-o", "%c"], env=env, capture_output=True, text=True, check=True)
    return max(int(x) for x in out.stdout.split())


def filled_profile(dest: Path, env) -> Path:
    """The slurm profile as a user fills it in, sized to the test node."""
    prof = yaml.safe_load(PROFILE.read_text())
    prof["default-resources"].update(slurm_account=ACCOUNT, slurm_partition=PARTITION, mem_mb=1000)
    cpus = _node_cpus(env)
    prof["set-threads"] = {rule: min(int(n), cpus) for rule, n in prof.get("set-threads", {}).items()}
    for res in prof.get("set-resources", {}).values():
        if "mem_mb" in res:
            res["mem_mb"] = 1500
    # Fast polling for a test (the defaults suit a busy cluster), and keep the
    # SLURM logs of successful jobs for inspection.
    prof.update({"slurm-init-seconds-before-status-checks": 2, "seconds-between-status-checks": 2,
                 "latency-wait": 10, "slurm-keep-successful-logs": True, "jobs": 10, "retries": 0})
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "config.v8+.yaml").write_text(yaml.safe_dump(prof, sort_keys=False))
    return dest


def run_snakemake(args, cwd, env, timeout):
    res = subprocess.run([str(VENV_BIN / "snakemake"), *args], cwd=cwd, env=env, capture_output=True,
                         text=True, timeout=timeout)
    return res


def submitted_jobs(log_text: str) -> dict[int, int]:
    """Snakemake job id -> SLURM job id, from the executor's log lines."""
    pairs = re.findall(r"Job (\d+) has been submitted with SLURM jobid (\d+)", log_text)
    return {int(a): int(b) for a, b in pairs}


def jobcomp_records(env, slurm_ids) -> dict[int, dict]:
    """The controller's job completion log lines of these jobs."""
    text = (STATE / "log" / "jobcomp.log").read_text()
    records = {}
    for line in text.splitlines():
        fields = dict(kv.split("=", 1) for kv in re.findall(r"(\w+=\S*)", line))
        jid = int(fields.get("JobId", -1))
        if jid in slurm_ids:
            records[jid] = fields
    return records


def sacct_records(env, slurm_ids) -> dict[int, dict]:
    ids = ",".join(str(i) for i in slurm_ids)
    out = subprocess.run(["sacct", "-X", "-n", "--parsable2", "-j", ids,
                          "-o", "JobIDRaw,State,Account,Partition,AllocTRES,JobName"],
                         env=env, capture_output=True, text=True, check=True).stdout
    recs = {}
    for line in out.splitlines():
        jid, state, account, partition, tres, name = line.split("|")
        recs[int(jid)] = dict(state=state, account=account, partition=partition, tres=tres, name=name)
    return recs


def assert_all_through_sbatch(result, env, expected_jobs: int):
    """Every Snakemake job was an sbatch job that the scheduler ran to completion."""
    text = result.stdout + result.stderr
    jobs = submitted_jobs(text)
    assert len(jobs) == expected_jobs, f"{len(jobs)} sbatch submissions, expected {expected_jobs}:\n{text[-3000:]}"
    comp = jobcomp_records(env, set(jobs.values()))
    assert set(comp) == set(jobs.values()), "jobs missing from the job completion log"
    for rec in comp.values():
        assert rec["JobState"] == "COMPLETED", rec
        assert rec["Partition"] == PARTITION and rec["Account"] == ACCOUNT, rec
    acct = sacct_records(env, set(jobs.values()))
    assert set(acct) == set(jobs.values()), "jobs missing from sacct"
    assert all(r["state"] == "COMPLETED" and r["account"] == ACCOUNT for r in acct.values()), acct
    return jobs, acct


# --------------------------------------------------------------------------- a throwaway workflow
TOY = textwrap.dedent(
    """
    rule all:
        input: "out/summary.txt"

    rule cutouts:
        output: "out/group-{g}.txt"
        threads: 1
        shell: "echo group {wildcards.g} $(( {wildcards.g} * {wildcards.g} )) > {output}"

    rule train:
        input: expand("out/group-{g}.txt", g=range(3))
        output: "out/model.txt"
        resources: gpu=1
        shell: "cat {input} | sort > {output}; echo gpus=${{SLURM_GPUS_ON_NODE:-none}} > out/train-env.txt"

    rule summary:
        input: "out/model.txt"
        output: "out/summary.txt"
        shell: "wc -l < {input} > {output}; cat {input} >> {output}"
    """
)


def test_toy_workflow_through_slurm(slurm, tmp_path):
    """Profile mechanics: account, partition, GPU request, every job via sbatch, same outputs."""
    env = slurm
    prof = filled_profile(tmp_path / "profile", env)
    for name in ("slurm", "local"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "Snakefile").write_text(TOY)
    local = run_snakemake(["--cores", "2", "-q"], tmp_path / "local", env, 120)
    assert local.returncode == 0, local.stderr[-3000:]
    res = run_snakemake(["--profile", str(prof)], tmp_path / "slurm", env, 240)
    assert res.returncode == 0, (res.stdout + res.stderr)[-4000:]
    jobs, acct = assert_all_through_sbatch(res, env, expected_jobs=5)
    for rel in ["out/summary.txt", "out/model.txt"] + [f"out/group-{g}.txt" for g in range(3)]:
        assert (tmp_path / "slurm" / rel).read_bytes() == (tmp_path / "local" / rel).read_bytes(), rel
    # train asked for a GPU (profile: gpu: 1) and SLURM allocated the node's declared one.
    gpu_jobs = [r for r in acct.values() if "gres/gpu=1" in r["tres"]]
    assert len(gpu_jobs) == 1, acct
    assert (tmp_path / "slurm" / "out" / "train-env.txt").read_text().strip() == "gpus=1"


# --------------------------------------------------------------------------- the real workflow
# The smallest end-to-end target of the default workflow (mock sky -> query),
# on a sky shrunk to a few fields so that the test stays within minutes.
TARGETS = ["results/catalog.parquet"]
TINY_MOCK = {
    "mock": {
        "n_chunks": 2,
        "runs": [
            {"run": 9001, "ra_start": 150.0, "dec": 30.0, "camcols": [1], "n_fields": 2, "epochs": 1},
            {"run": 9101, "ra_start": 20.0, "dec": 0.0, "camcols": [3], "n_fields": 2, "epochs": 1,
             "stripe82": True},
        ],
        "photoz_training_size": 500,
    }
}


def _tiny_config(dest: Path) -> Path:
    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    for key, val in TINY_MOCK["mock"].items():
        cfg["mock"][key] = val
    dest.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return dest


NETWORK_RULES = {"query", "frame_index", "retrieve"}  # the jobs that reach the archive (workflow/rules/query.smk)


def _rules_by_jobid(text: str) -> dict[int, tuple[str, bool]]:
    """Snakemake job id -> (rule, ran as a local rule), from the run's log (`rule X:` / `localrule X:` blocks)."""
    out, current = {}, None
    for line in text.splitlines():
        m = re.match(r"^(local)?(?:rule|checkpoint) (\w+):$", line)
        if m:
            current = (m.group(2), bool(m.group(1)))
            continue
        m = re.match(r"^\s+jobid: (\d+)$", line)
        if m and current:
            out[int(m.group(1))] = current
            current = None
    return out


@pytest.mark.parametrize("target", TARGETS)
def test_workflow_target_through_slurm(slurm, tmp_path, target):
    """The real workflow through sbatch, both ways of sdss.network_jobs: the archive's jobs on the
    submitting host (default: not sbatch jobs, `localrule`), or submitted like the rest (compute_nodes)."""
    env = slurm
    cfg = _tiny_config(tmp_path / "config.yaml")
    common = ["-s", str(ROOT / "Snakefile"), "--configfile", str(cfg)]
    dry = run_snakemake([target, *common, "-d", str(tmp_path / "local"), "-n"], tmp_path, env, 120)
    assert dry.returncode == 0, f"the workflow cannot build a DAG for {target}: {dry.stderr.strip()[-1000:]}"
    local = run_snakemake([target, *common, "-d", str(tmp_path / "local"), "--cores", "2"], tmp_path, env, 600)
    assert local.returncode == 0, f"{target} fails in a local run: {local.stderr.strip()[-2000:]}"
    prof = filled_profile(tmp_path / "profile", env)
    stats = _job_counts(dry.stdout + dry.stderr)
    assert stats, "no jobs in the dry run"
    network = {r: n for r, n in stats.items() if r in NETWORK_RULES}
    assert network, f"{target} needs no job that reaches the archive: {stats}"
    import pandas as pd

    for where in ("submit_host", "compute_nodes"):
        switch = tmp_path / f"{where}.yaml"
        switch.write_text(f"sdss:\n  network_jobs: {where}\n")
        run_dir = tmp_path / f"slurm-{where}"
        res = run_snakemake([target, *common[:-1], str(cfg), str(switch), "-d", str(run_dir), "--profile", str(prof)],
                            tmp_path, env, 600)
        text = res.stdout + res.stderr
        assert res.returncode == 0, text[-4000:]
        n_local = sum(network.values()) if where == "submit_host" else 0
        jobs, _ = assert_all_through_sbatch(res, env, expected_jobs=sum(stats.values()) - n_local)
        rules = _rules_by_jobid(text)
        submitted = {rules[j][0] for j in jobs}
        ran_locally = {rule for rule, is_local in rules.values() if is_local}
        if where == "submit_host":
            assert not (submitted & NETWORK_RULES), f"archive jobs went through sbatch: {submitted}"
            assert set(network) <= ran_locally, f"archive jobs not run as local rules: {ran_locally}"
        else:
            assert set(network) <= submitted, f"archive jobs not submitted: {submitted}"
            assert not (ran_locally & set(stats)), f"jobs run locally: {ran_locally}"
        pd.testing.assert_frame_equal(pd.read_parquet(run_dir / target), pd.read_parquet(tmp_path / "local" / target))


def _job_table(text: str) -> str:
    m = re.search(r"Job stats:\n(.*?)\ntotal", text, flags=re.S)
    return m.group(1) if m else ""


def _job_counts(text: str) -> dict[str, int]:
    """Rule -> number of jobs, from Snakemake's `Job stats` table (without `all`)."""
    counts = {}
    for line in _job_table(text).splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            counts[parts[0]] = int(parts[1])
    counts.pop("all", None)
    return counts
