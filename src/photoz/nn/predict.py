"""The 180-bin redshift PDF of every test galaxy from one trained member.

``python -m photoz predict --checkpoint results/models/T/fold0/seed0/best.pt
--shards results/shards --trial-json '{...}' --fold 0 --out results/predictions/T/fold0/seed0.npz``

Output ``.npz``: ``specObjID (N,) int64`` and ``pdf (N, n_bins) float32`` (softmax).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from pathlib import Path

import numpy as np
import torch

from .train import load_member, resolve_device

__all__ = ["predict_pdfs", "main"]

log = logging.getLogger("photoz.nn.predict")


@torch.no_grad()
def predict_pdfs(model, source, ebv, batch_size, device="cpu", amp=False, channels_last=False, compile=False):
    """Softmax PDFs ``(N, n_bins)`` float32 of one network for every image of ``source``.

    ``compile``: full batches run through ``torch.compile`` (the last, partial batch eagerly).
    The PDFs stay on the device until the end and are copied back once.
    """
    device = torch.device(device)
    model = model.to(device).eval()
    if channels_last:
        model.set_channels_last(True)
    fwd = torch.compile(model, dynamic=False) if compile else model
    ebv = torch.tensor(np.array(ebv, dtype=np.float32))
    out = torch.empty((len(source), model.n_bins), dtype=torch.float32, device=device)
    for a in range(0, len(source), batch_size):
        idx = torch.arange(a, min(a + batch_size, len(source)))
        x = source.batch(idx).to(device, non_blocking=True)
        f = fwd if len(idx) == batch_size else model
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
            logits = f(x, ebv[idx].to(device) if model.ebv_input else None)
        out[a:a + len(idx)] = torch.softmax(logits.float(), dim=-1)
    return out.cpu().numpy()


def main(argv=None):
    from photoz.io import setup_logging

    ap = argparse.ArgumentParser(prog="photoz predict", description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", required=True, help="best.pt, average.pt or checkpoint.pt of one member (training.predict_from)")
    ap.add_argument("--shards", default="results/shards", help="directory with shard-*.npy and catalog.parquet")
    ap.add_argument("--split-npz", help="split exported by `photoz train --export-split` (no pandas needed)")
    ap.add_argument("--trial-json", help="the trial's config entry (JSON)")
    ap.add_argument("--fold", type=int, default=0)
    ap.add_argument("--device", required=True, help="training.device: auto | cpu | cuda")
    ap.add_argument("--batch-size", type=int, required=True, help="training.eval_batch_size")
    ap.add_argument("--num-threads", type=int, required=True, help="training.num_threads")
    ap.add_argument("--out", required=True)
    ap.add_argument("--log")
    a = ap.parse_args(argv)
    logger = setup_logging(a.log, name="photoz")
    from .data import ShardStore, SplitArrays, make_source, split_from_catalog

    if not Path(a.checkpoint).exists():
        raise FileNotFoundError(f"checkpoint {a.checkpoint} does not exist")
    t0 = time.time()
    device = resolve_device(a.device)
    if device.type == "cpu":
        torch.set_num_threads(a.num_threads)
    model, ck = load_member(a.checkpoint)
    if a.split_npz:
        parts = SplitArrays.load_npz(a.split_npz)
    else:
        if not a.trial_json:
            ap.error("give --trial-json (with --shards) or --split-npz")
        parts = split_from_catalog(Path(a.shards) / "catalog.parquet", json.loads(a.trial_json), a.fold)
    test = parts["test"]
    store = ShardStore(a.shards)
    src = make_source(store, test, device)
    # bf16 and channels-last on CUDA only: on the CPU inference of the few test galaxies is cheap, and
    # plain fp32 keeps predictions bit-identical to those of the same weights before channels-last
    pdf = predict_pdfs(model, src, test.ebv, a.batch_size, device, amp=device.type == "cuda",
                       channels_last=device.type == "cuda")
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(a.out).with_name(f".{Path(a.out).stem}.tmp{os.getpid()}.npz")
    np.savez(tmp, specObjID=test.specObjID.astype(np.int64), pdf=pdf)
    os.replace(tmp, a.out)
    logger.info("predicted %d test galaxies with %s (epoch %d, seed %d) in %.1f s -> %s", len(test), a.checkpoint,
                ck["epoch"], ck["seed"], time.time() - t0, a.out)
    return 0
