"""CPU seconds per workflow job, measured from /proc while a run goes (Linux).

On a shared machine a job's wall time depends on what else runs; its CPU time
(user + system, its waited-for children included: SWarp, latexmk) much less.
``watch`` samples every ``python -m photoz SUBCOMMAND`` process each second and
keeps its last reading; ``report`` sums them per Snakemake stage.

    python benchmarks/job_cpu.py watch --out logs/job_cpu.jsonl &   # during the run
    python benchmarks/job_cpu.py report logs/job_cpu.jsonl [--galaxies N]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections import defaultdict
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


def _sample(cwd=None):
    out = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            if len(cmd) < 4 or cmd[1:3] != [b"-m", b"photoz"]:
                continue
            if cwd and os.readlink(f"/proc/{pid}/cwd") != cwd:
                continue
            stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        cpu = sum(int(v) for v in stat[11:15]) / TICK  # utime stime cutime cstime
        rss = max((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM")), default=0)
        args = [c.decode(errors="replace") for c in cmd[3:] if c]
        key = f"{pid}:{stat[19]}"  # pid and start time: a reused pid is a new job
        out[key] = {"cmd": args[0], "args": " ".join(a for a in args[1:] if not a.startswith("{"))[:300],
                    "cpu_s": cpu, "rss_kb": rss, "t": time.time()}
    return out


def watch(out, interval=1.0, cwd=None):
    seen = {}
    try:
        while True:
            for k, v in _sample(cwd).items():
                first = seen.get(k, v)
                v["start"] = first.get("start", v["t"])
                seen[k] = v
            tmp = Path(str(out) + ".tmp")
            tmp.write_text("".join(json.dumps({"key": k, **v}) + "\n" for k, v in seen.items()))
            os.replace(tmp, out)
            time.sleep(interval)
    except KeyboardInterrupt:
        pass


def stage(rec):
    """The Snakemake stage of a job from its command line."""
    cmd, args = rec["cmd"], rec["args"]
    if cmd == "cutouts" and "swarp" in args and "check" in args:
        return "swarp_check"
    return {"mock-sky-chunk": "mock sky", "mock-sky-merge": "mock sky", "retrieve": "retrieval",
            "cutouts": "cutouts", "swarp-check": "swarp_check", "train": "train", "predict": "predict",
            "figure": "figures", "paper": "paper"}.get(cmd, cmd)


def report(path, galaxies=None):
    rows = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    tot = defaultdict(lambda: [0, 0.0, 0])
    for r in rows:
        s = tot[stage(r)]
        s[0] += 1
        s[1] += r["cpu_s"]
        s[2] = max(s[2], r["rss_kb"])
    print(f"{'stage':16s} {'jobs':>5s} {'CPU min':>8s} {'peak RSS MB':>12s}" + ("  CPU ms/galaxy" if galaxies else ""))
    for k, (n, cpu, rss) in sorted(tot.items(), key=lambda kv: -kv[1][1]):
        print(f"{k:16s} {n:5d} {cpu / 60:8.2f} {rss / 1024:12.0f}" + (f"  {1000 * cpu / galaxies:10.1f}" if galaxies else ""))
    print(f"{'total':16s} {sum(v[0] for v in tot.values()):5d} {sum(v[1] for v in tot.values()) / 60:8.2f}")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="what", required=True)
    w = sub.add_parser("watch")
    w.add_argument("--out", required=True)
    w.add_argument("--interval", type=float, default=1.0)
    w.add_argument("--cwd", default=os.getcwd(), help="only jobs running in this folder (default: here)")
    r = sub.add_parser("report")
    r.add_argument("path")
    r.add_argument("--galaxies", type=int)
    a = p.parse_args()
    if a.what == "watch":
        watch(a.out, a.interval, str(Path(a.cwd).resolve()))
    else:
        report(a.path, a.galaxies)


if __name__ == "__main__":
    main()
