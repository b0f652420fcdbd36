"""Training loop of the photo-z CNN: one or several members, resumable at every epoch.

Cross-entropy on the redshift classes (one-hot targets as in the paper, or
Gaussian-smoothed ones: ``label_sigma_z``), Adam, random flips and 90-degree
rotations, validation loss / sigma_MAD / PIT histogram after each epoch, the
best-validation-loss weights kept, the mean of the last epochs' weights
(``average_fraction`` of the run's epochs: :func:`average_window`) kept as
well, a checkpoint (model, optimizer, all RNG states, epoch, iteration, the
running sum of the averaged weights) after every epoch.

Determinism: member ``m``'s initialisation comes from its seed alone, its
batch order and augmentations from ``(seed, epoch)`` alone. A job killed at any
moment restarts from the last epoch checkpoint and replays the interrupted
epoch exactly, so it ends with the same weights as an uninterrupted run
(bit-identical on the CPU).

Several members can train in one process (``seeds=[...]``): they are held in
one :class:`~photoz.nn.model.Members`, each the plain published network with
its own initialisation, its own batches and its own Adam; each member's
checkpoint is written to its own directory. On a GPU all members' steps
(augmentation, forward, loss, backward, Adam) are captured once into one CUDA
graph, each member on its own CUDA stream, and replayed every step: no
launch overhead, and the members' kernels run side by side
(``benchmarks/bench_train_h200.txt``). On a CPU they run one after the other.

Speed settings (``SpeedSettings``; none changes what is learned beyond rounding).
On a GPU: the training images live in GPU memory (bf16 if asked), augmentation
runs on the GPU, bf16 autocast, channels-last and ``torch.compile``. On a CPU
with native bf16 (``avx512_bf16`` or AMX) and a C++ compiler: channels-last,
bf16 autocast and ``torch.compile`` (inductor) together, twice the fp32 NCHW
rate of the reduced network (``benchmarks/bench_train_cpu.txt``); elsewhere
channels-last alone. Compiled code is cached by inductor on disk, so only the
first job on a machine compiles (about a minute per network shape).

Only torch, numpy, the standard library and the numpy-only ``photoz.metrics``
(validation sigma_MAD, PIT) and ``photoz.bins`` (classes) are imported.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import os
import random
import shutil
import time
from dataclasses import MISSING, asdict, dataclass, fields
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from . import files
from .model import Members, PhotoZNet, upgrade_state_dict
from photoz import bins as zbins
from photoz import metrics

__all__ = ["TrainConfig", "SpeedSettings", "average_window", "CUDA_ONLY", "cpu_has_native_bf16", "cpu_compiler", "n_epochs", "train_members", "train_step", "member_step", "class_targets", "GraphedStep", "augment", "batch_order", "resolve_device", "evaluate", "load_member"]

log = logging.getLogger("photoz.nn.train")

CHECKPOINT_FORMAT = 3  # 3: the plain network's state dict (2: one-member stack; load_member upgrades it)
N_PIT = 10


# keys of the ``training`` config section read by the workflow, not by the loop
_NOT_TRAINING = {"network", "predict_from", "runtime_min", "mem_mb", "stack_members"}


@dataclass
class TrainConfig:
    """Settings of one training run: the ``training`` config section, the network, the bins, the trial's E(B-V) input.

    Every field but ``deterministic`` is a config key, so none has a default here: the
    schema (``workflow/schemas/config.schema.yaml``) holds them, and :meth:`from_dicts`
    builds this from the validated config's sections.
    """

    epochs: int
    max_iterations: int
    min_iterations: int             # small training sets run more epochs, up to this many steps
    batch_size: int
    learning_rate: float
    label_sigma_z: float            # Gaussian width (in z) of the class targets; 0: the paper's one-hot targets
    average_fraction: float         # average.pt: the mean weights of this last fraction of the run's epochs
    device: str                     # auto | cpu | cuda
    num_threads: int
    width: float                    # networks.<name>
    dense: int
    ebv_input: bool                 # trials.<name>.ebv_input
    n_bins: int                     # bins.n
    z_min: float
    z_max: float
    amp: str                        # auto (bf16 on cuda, and on a cpu with native bf16) | bf16 | none
    channels_last: str              # auto (on cuda and cpu) | true | false
    compile: str                    # auto (on cuda; on cpu with bf16 on and a C++ compiler) | true | false
    resident: str                   # auto | true | false: training images in device memory
    resident_dtype: str             # float32 | bfloat16 (halves GPU memory)
    eval_batch_size: int
    fused: str                      # fused 1x1 heads (PhotoZNet.set_fused): auto (with compile on the cpu) | true | false
    cuda_graph: str                 # the whole step as one CUDA graph (auto: on cuda) | true | false
    deterministic: bool = True      # not a config key: cuDNN's deterministic algorithms (tests may switch it off)

    @classmethod
    def from_dicts(cls, training=None, network=None, bins=None, **extra):
        """From the validated config's ``training`` section, one ``networks`` entry and ``bins``.

        ``extra`` sets the other fields (``ebv_input``, ``deterministic``) or overrides a section's.
        A missing setting raises ``KeyError`` naming its config key.
        """
        d = {}
        for src in (training or {}, network or {}, {"n_bins": (bins or {}).get("n"), "z_min": (bins or {}).get("z_min"),
                                                       "z_max": (bins or {}).get("z_max")}, extra):
            for k, v in src.items():
                if k in _NOT_TRAINING or v is None:
                    continue
                if k == "n":
                    k = "n_bins"
                if k not in cls.__dataclass_fields__:
                    raise KeyError(f"unknown training setting {k!r}; known: {', '.join(cls.__dataclass_fields__)}")
                d[k] = v
        for k, v in list(d.items()):
            if isinstance(v, bool) and k in ("amp", "channels_last", "compile", "resident", "fused", "cuda_graph"):
                d[k] = "true" if v else "false"
        where = {"width": "networks.<name>.width", "dense": "networks.<name>.dense", "n_bins": "bins.n",
                 "z_min": "bins.z_min", "z_max": "bins.z_max", "ebv_input": "trials.<name>.ebv_input"}
        missing = [f.name for f in fields(cls) if f.name not in d and f.default is MISSING]
        if missing:
            raise KeyError("training settings missing: " + ", ".join(where.get(k, f"training.{k}") for k in missing))
        return cls(**d)

    def sections(self):
        """The inverse of :meth:`from_dicts`: ``{"training": ..., "network": ..., "bins": ...}``, the
        ``--config-json`` of ``photoz train`` for these settings (``ebv_input`` travels with the trial)."""
        d = asdict(self)
        other = ("width", "dense", "n_bins", "z_min", "z_max", "ebv_input", "deterministic")
        return {"training": {k: v for k, v in d.items() if k not in other},
                "network": {"width": self.width, "dense": self.dense},
                "bins": {"n": self.n_bins, "z_min": self.z_min, "z_max": self.z_max}}

    def fingerprint(self):
        """What must match for a checkpoint to be resumed (not device or speed settings)."""
        keys = ["epochs", "max_iterations", "min_iterations", "batch_size", "learning_rate", "label_sigma_z",
                "average_fraction", "width", "dense", "ebv_input", "n_bins", "z_min", "z_max"]
        return {k: getattr(self, k) for k in keys}


def n_epochs(cfg, n_train):
    """Epochs to run on ``n_train`` galaxies: ``epochs``, or more if that is under ``min_iterations`` steps.

    A small training set (a learning-curve point) gets as many epochs as it
    takes to reach ``min_iterations`` optimisation steps; ``max_iterations``
    still stops the run. With ``min_iterations = 0`` this is ``cfg.epochs``.
    """
    steps = math.ceil(int(n_train) / cfg.batch_size)
    return max(int(cfg.epochs), math.ceil(int(cfg.min_iterations) / max(steps, 1)))


def average_window(cfg, n_train):
    """``(first, last)``: the epochs (1-based, inclusive) whose weights ``average.pt`` averages.

    The last ``average_fraction`` of the epochs the run will train (:func:`n_epochs`, or fewer
    where ``max_iterations`` ends it first), rounded, at least the last one: the tail of
    training where Adam's weights wander around a minimum, whose mean is a flatter, better
    point than any one epoch (stochastic weight averaging: Izmailov et al. 2018, who average
    over the last quarter of the budget). Fixed before training, never chosen on test galaxies.
    """
    steps = max(math.ceil(int(n_train) / cfg.batch_size), 1)
    last = min(n_epochs(cfg, n_train), math.ceil(int(cfg.max_iterations) / steps))
    k = min(last, max(1, int(math.floor(float(cfg.average_fraction) * last + 0.5))))
    return last - k + 1, last


def resolve_device(name):
    """``auto`` -> cuda if available else cpu."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("training.device = 'cuda' but torch sees no CUDA device")
    return torch.device(name)


def _flag(value, device, auto_cpu=False):
    """A speed switch: ``auto`` is on on CUDA, and on the CPU when ``auto_cpu``."""
    v = str(value).lower()
    if v == "auto":
        return device.type == "cuda" or (device.type == "cpu" and auto_cpu)
    return v in ("true", "1", "yes", "bf16")


def cpu_has_native_bf16():
    """Whether oneDNN runs bf16 natively on this CPU (AVX-512 BF16 or AMX), not emulated."""
    try:
        return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def cpu_compiler():
    """The C++ compiler inductor would build CPU kernels with, or None if there is none."""
    try:
        from torch._inductor import config as inductor_config
        names = inductor_config.cpp.cxx
    except Exception:  # inductor missing: torch.compile cannot run
        return None
    names = [names] if isinstance(names, str) else [n for n in names if n]
    for name in [os.environ.get("CXX")] + list(names) + ["g++", "c++"]:
        if name and shutil.which(name):
            return shutil.which(name)
    return None


#: What only runs on CUDA, in one place (tests skip these on a CPU with this reason). Every
#: other speed setting (bf16 autocast, channels-last, torch.compile, fused layers, stacked
#: members, resident images) also runs on the CPU and is tested there.
CUDA_ONLY = {
    "fused_adam": "torch.optim.Adam(fused=True) is used on CUDA only (the CPU runs the default single-tensor Adam)",
    "cudnn_flags": "cudnn.benchmark and TF32 matmul/convolutions are CUDA backend flags",
    "cuda_graphs": "the training step of all members is captured as one CUDA graph, one CUDA stream per member",
    "pinned_memory": "pinned host buffers for non-blocking copies from memory-mapped shards to a GPU",
    "bf16_resident": "resident_dtype bfloat16 applies to GPU-resident images only",
}


# --------------------------------------------------------------------------
# deterministic batches and augmentation


def batch_order(seed, epoch, n):
    """Permutation of the ``n`` training galaxies for ``epoch`` (from seed and epoch alone)."""
    return np.random.default_rng([int(seed), int(epoch), 0]).permutation(n)


def augment_codes(seed, epoch, n):
    """One of the 8 flip/rotation transforms per position of the epoch (0..7)."""
    return np.random.default_rng([int(seed), int(epoch), 1]).integers(0, 8, n)


def augment(x, codes):
    """Apply the dihedral transform ``codes[i]`` (bit 2: flip; bits 0-1: quarter turns) to image ``i``.

    ``x``: ``(..., B, C, H, W)`` with square images, ``codes``: ``(..., B)`` on the same device.
    Runs on the device of ``x``.
    """
    codes = codes.to(x.device)
    shape = codes.shape + (1, 1, 1)
    flip = ((codes >> 2) & 1).bool().reshape(shape)
    k = (codes & 3).reshape(shape)
    x = torch.where(flip, x.flip(-1), x)
    r1 = x.transpose(-2, -1).flip(-2)        # rot90 by +1 in the (H, W) plane
    r2 = x.flip(-2).flip(-1)
    r3 = x.transpose(-2, -1).flip(-1)
    return torch.where(k == 0, x, torch.where(k == 1, r1, torch.where(k == 2, r2, r3)))


def class_targets(cfg, device="cpu"):
    """The training target of each class: ``(n_bins, n_bins)`` float32 rows, or None for one-hot targets.

    With ``cfg.label_sigma_z > 0`` row ``c`` is a Gaussian of that width (in z) centred on class
    ``c``'s midpoint, evaluated at every class midpoint and normalised to 1 within the bins (the
    paper's loss is ``label_sigma_z = 0``: one-hot targets). The cross-entropy against these rows
    tells the network that neighbouring classes are neighbouring redshifts.
    """
    if not cfg.label_sigma_z:
        return None
    mid = torch.as_tensor(zbins.midpoints(cfg.n_bins, cfg.z_min, cfg.z_max), dtype=torch.float64)
    w = torch.exp(-0.5 * ((mid[:, None] - mid[None, :]) / float(cfg.label_sigma_z)) ** 2)
    return (w / w.sum(dim=1, keepdim=True)).to(device=device, dtype=torch.float32)


def member_step(fwd, opt, x, codes, y, ebv, amp=False, targets=None):
    """One optimisation step of one member: augment, forward, cross-entropy, backward, Adam.

    ``x``: ``(B, 5, 64, 64)`` images, ``codes``: ``(B,)`` augmentation codes, ``y``: ``(B,)``
    classes, ``ebv``: ``(B,)``; ``targets``: :func:`class_targets` (None: one-hot). Returns the
    mean loss (a 0-d tensor, detached).
    """
    x = augment(x, codes)
    # no autocast weight cache: the step may be captured into a CUDA graph
    with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp, cache_enabled=False):
        logits = fwd(x, ebv)
    loss = F.cross_entropy(logits.float(), y if targets is None else targets[y])
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss.detach()


def train_step(fwds, opts, x, codes, y, ebv, amp=False, targets=None):
    """One optimisation step of every member, one after the other (``member_step``).

    ``fwds``/``opts``: one forward function and one optimizer per member; ``x``:
    ``(G, B, 5, 64, 64)``, ``codes``/``y``/``ebv``: ``(G, B)``. Returns the losses ``(G,)``.
    """
    return torch.stack([member_step(f, o, x[g], codes[g], y[g], ebv[g], amp, targets)
                        for g, (f, o) in enumerate(zip(fwds, opts))])


class GraphedStep:
    """``train_step`` of all members captured once as one CUDA graph, one CUDA stream per member.

    The inputs are copied into static buffers and the graph replayed: one launch
    per step instead of thousands, and the members' kernels overlap on the GPU
    (each member's step only waits for the batch to be copied in). The first
    ``warmup`` calls run the same step uncaptured on the members' streams (they
    are real steps: compilation, cuDNN's algorithm search and the optimizer's
    state happen there); the next call captures the graph, and every call from
    then on replays it. Only full batches come here (static shapes).
    """

    def __init__(self, fwds, opts, shape, amp, device, warmup=3, targets=None):
        G, b = shape
        self.fwds, self.opts, self.amp, self.warmup, self.targets = fwds, opts, amp, warmup, targets
        self.x = torch.zeros(G, b, 5, 64, 64, device=device)
        self.codes = torch.zeros(G, b, dtype=torch.long, device=device)
        self.y = torch.zeros(G, b, dtype=torch.long, device=device)
        self.ebv = torch.zeros(G, b, device=device)
        self.losses = torch.zeros(G, device=device)
        self.streams = [torch.cuda.Stream(device) for _ in range(G)]
        self.graph = None
        self.calls = 0

    def _all_members(self):
        """Every member's step on its own stream, forked from and joined back to the current stream."""
        main = torch.cuda.current_stream()
        for g, stream in enumerate(self.streams):
            stream.wait_stream(main)
            with torch.cuda.stream(stream):
                loss = member_step(self.fwds[g], self.opts[g], self.x[g], self.codes[g], self.y[g], self.ebv[g], self.amp,
                                   self.targets)
                self.losses[g].copy_(loss)
        for stream in self.streams:
            main.wait_stream(stream)

    def _capture(self):
        """The captured graph, or False (uncaptured steps from then on) if capture fails on this machine."""
        graph = torch.cuda.CUDAGraph()
        try:
            with torch.cuda.graph(graph):
                self._all_members()
        except RuntimeError as exc:  # capture records nothing that ran: the uncaptured step is still exact
            log.warning("CUDA graph capture failed (%s); the members' steps run uncaptured on their streams", exc)
            torch.cuda.synchronize()
            return False
        return graph

    def __call__(self, x, codes, y, ebv):
        self.x.copy_(x)
        self.codes.copy_(codes)
        self.y.copy_(y)
        self.ebv.copy_(ebv)
        self.calls += 1
        if self.graph is None and self.calls > self.warmup:
            self.graph = self._capture()
        if not self.graph:
            self._all_members()
        else:
            self.graph.replay()
        return self.losses.clone()


# --------------------------------------------------------------------------
# evaluation


@torch.no_grad()
def predict_logits(nets, source, ebv, batch_size, amp=False, device=None):
    """Log-softmax of every member of ``nets`` (a sequence of networks) for every galaxy of ``source``.

    Returns ``(G, N, n_bins)`` float32 on the CPU.
    """
    n = len(source)
    device = device or next(nets[0].parameters()).device
    out = [[] for _ in nets]
    for net in nets:
        net.eval()
    for a in range(0, n, batch_size):
        idx = torch.arange(a, min(a + batch_size, n))
        x = source.batch(idx).to(device)
        e = ebv[a:a + len(idx)].to(device)
        for g, net in enumerate(nets):
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                logits = net(x, e)
            out[g].append(F.log_softmax(logits.float(), dim=-1).cpu())
    for net in nets:
        net.train()
    return torch.stack([torch.cat(o) for o in out])


def evaluate(logp, y, z, mid, edges):
    """Validation metrics of each member from log-probabilities ``(G, N, K)``."""
    res = []
    for g in range(logp.shape[0]):
        loss = float(F.nll_loss(logp[g], y).item())
        p = logp[g].exp().double().numpy()
        zp = metrics.z_phot(p, mid)
        density, _, _ = metrics.pit_histogram(metrics.pit(p, z, edges), N_PIT)
        res.append({"val_loss": loss, "val_sigma_mad": float(metrics.sigma_mad(metrics.delta_z(zp, z))),
                    "val_pit": (density / N_PIT).tolist()})  # fraction of galaxies per PIT bin
    return res


# --------------------------------------------------------------------------
# checkpoints (one file per member directory)


def _optimizer_state(opt, net):
    """Adam state of one member, keyed by parameter name (and its hyper-parameters)."""
    names = [n for n, _ in net.named_parameters()]
    sd = opt.state_dict()
    return {"state": {names[i]: st for i, st in sd["state"].items()},
            "param_groups": [{k: v for k, v in pg.items() if k != "params"} for pg in sd["param_groups"]]}


def _load_optimizer(opt, net, saved):
    """Restore the Adam state written by :func:`_optimizer_state` (this run's hyper-parameters kept)."""
    sd = opt.state_dict()
    sd["state"] = {i: saved["state"][name] for i, (name, _) in enumerate(net.named_parameters()) if name in saved["state"]}
    opt.load_state_dict(sd)


def _rng_states():
    st = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    return st


def _set_rng_states(st):
    torch.set_rng_state(st["torch"])
    np.random.set_state(st["numpy"])
    random.setstate(st["python"])
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])


def _save_atomic(obj, path):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _write_metrics_csv(path, rows):
    cols = ["epoch", "iteration", "train_loss", "val_loss", "val_sigma_mad", "seconds"] + [f"val_pit_{i}" for i in range(N_PIT)]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(cols)
    for r in rows:
        w.writerow([r["epoch"], r["iteration"], f"{r['train_loss']:.6f}", f"{r['val_loss']:.6f}",
                    f"{r['val_sigma_mad']:.6f}", f"{r['seconds']:.2f}"] + [f"{v:.5f}" for v in r["val_pit"]])
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(buf.getvalue())
    os.replace(tmp, path)


RESUME_NAME = files.RESUME


def finished_member(out_dir, fingerprint):
    """Whether ``out_dir`` holds a member that finished training with these settings.

    Its ``checkpoint.pt`` (written only at the end, from ``resume.pt``), ``best.pt``,
    ``average.pt`` and ``metrics.csv`` exist, and the checkpoint is of this format, marked
    finished, with ``fingerprint`` (the settings, the member's seed and the
    number of training galaxies, as :func:`train_members` stores it).
    """
    d = Path(out_dir)
    if not all((d / f).exists() for f in (files.CHECKPOINT, files.BEST, files.AVERAGE, files.METRICS)):
        return False
    try:
        ck = torch.load(d / files.CHECKPOINT, map_location="cpu", weights_only=False)
    except Exception:  # unreadable (a truncated copy): not finished, train it again
        return False
    return (ck.get("format") == CHECKPOINT_FORMAT and bool(ck.get("finished"))
            and dict(ck.get("fingerprint", {})) == dict(fingerprint))


def load_member(path, map_location="cpu"):
    """A :class:`PhotoZNet` with the weights of a checkpoint or best file (format 2 or 3)."""
    ck = torch.load(path, map_location=map_location, weights_only=False)
    if ck.get("format", 2) not in (2, CHECKPOINT_FORMAT):
        raise ValueError(f"{path}: checkpoint format {ck.get('format')!r}; this code reads 2 and {CHECKPOINT_FORMAT}")
    cfg = {k: v for k, v in ck["model_config"].items() if k != "members"}
    model = PhotoZNet(**cfg)
    model.load_state_dict(upgrade_state_dict(ck["model"]))
    return model, ck


# --------------------------------------------------------------------------
# the loop


@dataclass
class SpeedSettings:
    """The speed settings of a run resolved for its device (none changes what is learned beyond rounding)."""

    device: torch.device
    amp: bool            # bf16 autocast
    channels_last: bool
    compile: bool        # torch.compile (inductor)
    fused: bool          # fused layers (PhotoZNet.set_fused)
    graph: bool = False  # the whole step as one CUDA graph (GraphedStep)

    @classmethod
    def resolve(cls, cfg):
        """``auto`` resolved for the device.

        CUDA: bf16 autocast, channels-last, compile. CPU: channels-last; bf16
        autocast and compile together where oneDNN has native bf16 and a C++
        compiler is found (measured on the reduced network: bf16 alone is
        slower than fp32 channels-last, compiled fp32 barely faster; together
        2x, the compiler fusing the casts and element-wise layers around the
        bf16 convolutions); fused 1x1 heads where compiled on a CPU (+7-12%
        there; no gain eagerly).
        """
        device = resolve_device(cfg.device)
        cpu = device.type == "cpu"
        cxx = cpu and cpu_compiler() is not None
        amp = _flag(cfg.amp, device, auto_cpu=cxx and cpu_has_native_bf16())
        compile_ = _flag(cfg.compile, device, auto_cpu=cxx and amp) and hasattr(torch, "compile")
        fused = str(cfg.fused).lower()
        graph = _flag(cfg.cuda_graph, device)
        if graph and cpu:
            raise ValueError("training.cuda_graph = true needs training.device cuda")
        return cls(device=device, amp=amp,
                   channels_last=_flag(cfg.channels_last, device, auto_cpu=True),
                   compile=compile_,
                   fused=fused in ("true", "1", "yes") or (fused == "auto" and cpu and compile_),
                   graph=graph)


def _configure_torch(cfg, sp):
    """Threads, determinism and the CUDA-only backend flags (``CUDA_ONLY``)."""
    if sp.device.type == "cpu":
        torch.set_num_threads(cfg.num_threads)
        if cfg.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
    else:
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def _build(cfg, sp, seeds):
    """The members, one Adam each, and their (possibly compiled) forward functions."""
    nets = Members(seeds, width=cfg.width, dense=cfg.dense, n_bins=cfg.n_bins, ebv_input=cfg.ebv_input).to(sp.device)
    for net in nets:
        net.set_fused(sp.fused)
        if sp.channels_last:
            net.set_channels_last(True)
    cuda = sp.device.type == "cuda"
    opts = [torch.optim.Adam(net.parameters(), lr=cfg.learning_rate,
                             **({"fused": True, "capturable": sp.graph} if cuda else {})) for net in nets]
    # static shapes: the compiled graph serves full batches; an epoch's last, partial batch runs
    # eagerly (the same function up to rounding) instead of compiling a second graph
    if sp.compile and sp.device.type == "cpu" and str(cfg.compile).lower() == "auto":
        # chosen by auto on a CPU: a machine whose compiler cannot build inductor's kernels
        # (missing headers, say) trains eagerly with a warning instead of failing
        import torch._dynamo as dynamo

        dynamo.config.suppress_errors = True
    fwds = [torch.compile(net, dynamic=False) if sp.compile else net for net in nets]
    return nets, opts, fwds


@dataclass
class _RunState:
    """What a resume restores: position, per-member history, best epochs and the running weight sums."""

    start_epoch: int
    iteration: int
    history: list
    best: list          # (best validation loss, its epoch) per member
    best_files: list    # contents of each member's best.pt (kept in resume.pt too)
    avg_sums: list      # per member: the sum of its weights over the averaged epochs so far (None before the window)
    avg_counts: list    # per member: how many epochs that sum holds


def _resume(nets, opts, fp, seeds, resume_files, logger):
    """Restore model, optimizer, RNG and run state from every member's ``resume.pt`` if all match."""
    G = len(seeds)
    fresh = _RunState(0, 0, [[] for _ in range(G)], [(math.inf, -1)] * G, [None] * G, [None] * G, [0] * G)
    cks = []
    for g, f in enumerate(resume_files):
        if not f.exists():
            return fresh
        ck = torch.load(f, map_location="cpu", weights_only=False)
        if ck.get("format") != CHECKPOINT_FORMAT or dict(ck.get("fingerprint", {})) != dict(fp, seeds=[int(seeds[g])]):
            logger.warning("%s: settings changed since this checkpoint; starting member %d afresh", f, seeds[g])
            return fresh
        cks.append(ck)
    if len({(c["epoch"], c["iteration"]) for c in cks}) != 1:
        logger.warning("member checkpoints are at different epochs; starting afresh")
        return fresh
    for net, opt, ck in zip(nets, opts, cks):
        net.load_state_dict(ck["model"])
        _load_optimizer(opt, net, ck["optimizer"])
    _set_rng_states(cks[0]["rng"])
    logger.info("resumed from %s at epoch %d, iteration %d", resume_files[0].parent, cks[0]["epoch"], cks[0]["iteration"])
    return _RunState(cks[0]["epoch"], cks[0]["iteration"], [c["history"] for c in cks],
                     [(c["best_val_loss"], c["best_epoch"]) for c in cks], [c["best"] for c in cks],
                     [c["average_sum"] for c in cks], [c["average_count"] for c in cks])


def _tensorboard_writers(out_dirs):
    try:  # TensorBoard only if installed
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401

        return [SummaryWriter(str(d / "tensorboard")) for d in out_dirs]
    except Exception:
        return None


def _train_epoch(cfg, sp, steps, data, seeds, epoch, st, budget):
    """One epoch (or until ``max_iterations``) of all members.

    ``steps``: (the step of full batches: compiled and/or a CUDA graph, the eager step of an epoch's
    last partial batch). ``data``: (train_src, y_train, e_train) on the device; ``budget``:
    [iterations left in this call] or [None]. Returns (mean train loss per member, images seen) or
    None on a simulated kill.
    """
    train_src, y_train, e_train = data
    G, n, device = len(seeds), len(train_src), sp.device
    # the epoch's batch order and augmentations, copied to the device once
    perms = torch.as_tensor(np.stack([batch_order(s, epoch, n) for s in seeds])).to(device)    # (G, n)
    codes = torch.as_tensor(np.stack([augment_codes(s, epoch, n) for s in seeds])).to(device)  # (G, n)
    loss_sum = torch.zeros(G, device=device, dtype=torch.float64)
    n_seen = 0
    for step in range(math.ceil(n / cfg.batch_size)):
        if st.iteration >= cfg.max_iterations:
            break
        if budget[0] is not None and budget[0] <= 0:
            return None
        sl = slice(step * cfg.batch_size, min((step + 1) * cfg.batch_size, n))
        idx = perms[:, sl]                                   # (G, b)
        b = idx.shape[1]
        x = train_src.batch(idx.reshape(-1)).to(device, non_blocking=True).reshape(G, b, 5, 64, 64)
        step = steps[0] if b == cfg.batch_size else steps[1]
        losses = step(x, codes[:, sl], y_train[idx], e_train[idx])
        loss_sum += losses.detach().double() * b
        n_seen += b
        st.iteration += 1
        if budget[0] is not None:
            budget[0] -= 1
    return (loss_sum / max(n_seen, 1)).cpu().numpy(), n_seen


def _validate(cfg, sp, nets, val, G):
    """Validation metrics of each member (NaN when there are no validation galaxies)."""
    val_src, y_val, e_val, val_z = val
    if not len(val_src):  # no validation galaxies: every epoch counts as the best
        return [{"val_loss": float("nan"), "val_sigma_mad": float("nan"), "val_pit": [0.0] * N_PIT}] * G
    logp = predict_logits(nets, val_src, e_val, cfg.eval_batch_size, sp.amp, sp.device)
    return evaluate(logp, y_val, np.asarray(val_z, dtype=np.float64),
                    zbins.midpoints(cfg.n_bins, cfg.z_min, cfg.z_max), zbins.edges(cfg.n_bins, cfg.z_min, cfg.z_max))


@dataclass
class _Members:
    """What stays fixed while members train: their settings, seeds, fingerprint, folders and averaged epochs."""

    cfg: TrainConfig
    seeds: list
    fp: dict
    out_dirs: list
    window: tuple       # (first, last) epoch of the weight average (average_window)


def _member_file(run, net, st, g, epoch):
    """What every weights file of member ``g`` records besides its weights."""
    return {"format": CHECKPOINT_FORMAT, "model_config": net.config(),
            "seed": int(run.seeds[g]), "epoch": epoch, "iteration": st.iteration,
            "fingerprint": dict(run.fp, seeds=[int(run.seeds[g])]), "train_config": asdict(run.cfg)}


def _accumulate(st, g, weights):
    """Add one epoch's weights (a CPU state dict) to member ``g``'s running sum (float32; integer buffers: the latest)."""
    if st.avg_sums[g] is None:
        st.avg_sums[g] = {k: v.clone() for k, v in weights.items()}
    else:
        for k, v in weights.items():
            if v.is_floating_point():
                st.avg_sums[g][k] += v
            else:
                st.avg_sums[g][k] = v.clone()
    st.avg_counts[g] += 1


def _record_epoch(run, net, opt, st, g, row, rng, last):
    """Member ``g``'s row, best.pt (if improved), resume.pt and metrics.csv. Returns whether it improved."""
    out_dirs = run.out_dirs
    st.history[g].append(row)
    member = {k: v.detach().to("cpu", copy=True) for k, v in net.state_dict().items()}
    improved = not (row["val_loss"] >= st.best[g][0])  # NaN-safe: no validation -> every epoch is "best"
    if improved:
        st.best[g] = (row["val_loss"], row["epoch"])
    if run.window[0] <= row["epoch"] <= run.window[1]:
        _accumulate(st, g, member)
    common = _member_file(run, net, st, g, row["epoch"])
    if improved:
        st.best_files[g] = dict(common, model=member, val_loss=row["val_loss"])
        _save_atomic(st.best_files[g], out_dirs[g] / files.BEST)
    ck = dict(common, model=member, optimizer=_optimizer_state(opt, net), rng=rng,
              history=st.history[g], best_val_loss=st.best[g][0], best_epoch=st.best[g][1], best=st.best_files[g],
              average_sum=st.avg_sums[g], average_count=st.avg_counts[g], finished=last)
    _save_atomic(ck, out_dirs[g] / RESUME_NAME)
    _write_metrics_csv(out_dirs[g] / files.METRICS, st.history[g])
    return improved


def _averages(run, sp, nets, st, val, logger):
    """Each member's ``average.pt``: the mean of its weights over ``run.window``, with its validation metrics.

    The members' networks are left holding these weights (training is over).
    """
    first, last = run.window
    for g, net in enumerate(nets):
        if st.avg_counts[g] != last - first + 1:
            raise RuntimeError(f"{run.out_dirs[g]}: weights of {st.avg_counts[g]} epochs summed for the average of "
                               f"epochs {first}-{last}")
        net.load_state_dict({k: v / st.avg_counts[g] if v.is_floating_point() else v for k, v in st.avg_sums[g].items()})
    vals = _validate(run.cfg, sp, list(nets), val, len(nets))
    out = []
    for g, net in enumerate(nets):
        weights = {k: v.detach().to("cpu", copy=True) for k, v in net.state_dict().items()}
        out.append(dict(_member_file(run, net, st, g, last), model=weights, averaged_epochs=[first, last],
                        val_loss=vals[g]["val_loss"], val_sigma_mad=vals[g]["val_sigma_mad"]))
        row = next((r for r in st.history[g] if r["epoch"] == st.best[g][1]), {"val_sigma_mad": math.nan})
        logger.info("seed %d: mean weights of epochs %d-%d: val_loss %.4f val_sigma_mad %.4f (least-loss epoch %d: "
                    "%.4f %.4f)", run.seeds[g], first, last, vals[g]["val_loss"], vals[g]["val_sigma_mad"],
                    st.best[g][1], st.best[g][0], row["val_sigma_mad"])
    return out


def _finish(st, out_dirs, averages):
    """best.pt (re)written (a scheduler may have deleted it after a kill), average.pt written; resume.pt becomes
    checkpoint.pt (last, so that a member with a checkpoint.pt has all its files)."""
    for g, d in enumerate(out_dirs):
        f = d / RESUME_NAME
        if not f.exists() or st.best_files[g] is None:
            raise RuntimeError(f"{f}: no checkpoint written (no epoch ran)")
        _save_atomic(st.best_files[g], d / files.BEST)
        _save_atomic(averages[g], d / files.AVERAGE)
        os.replace(f, d / files.CHECKPOINT)


def _epoch_end(run, nets, opts, st, rows, progress, writers, logger):
    """Record each member's epoch (checkpoints, metrics.csv, TensorBoard) and log it.

    ``progress``: ``(epochs, last, n_seen)``, the epochs of the run, whether this one is its last,
    and the images each member saw in it.
    """
    rng = _rng_states()
    (epochs, last, n_seen), seconds = progress, rows[0]["seconds"]
    for g, row in enumerate(rows):
        improved = _record_epoch(run, nets[g], opts[g], st, g, row, rng, last)
        if writers:
            for k in ("train_loss", "val_loss", "val_sigma_mad"):
                writers[g].add_scalar(k, row[k], row["epoch"])
        logger.info("seed %d epoch %d/%d it %d: train_loss %.4f val_loss %.4f val_sigma_mad %.4f (%.1f s, %.0f img/s)%s",
                    run.seeds[g], row["epoch"], epochs, st.iteration, row["train_loss"], row["val_loss"],
                    row["val_sigma_mad"], seconds, len(rows) * n_seen / max(seconds, 1e-9), " *best" if improved else "")


def _as_tensors(cfg, sp, train, val):
    """The training data ``(source, classes on the device, E(B-V) on the device)`` and the validation
    data ``(source, classes, E(B-V), z)``."""
    (train_src, train_z, train_ebv), (val_src, val_z, val_ebv) = train, val
    classes = lambda z: torch.as_tensor(zbins.to_class(z, cfg.n_bins, cfg.z_min, cfg.z_max))  # noqa: E731
    data = (train_src, classes(train_z).to(sp.device), torch.tensor(np.array(train_ebv, dtype=np.float32)).to(sp.device))
    return data, (val_src, classes(val_z), torch.tensor(np.array(val_ebv, dtype=np.float32)), val_z)


def _announce(cfg, sp, seeds, n, n_val, logger):
    """Log what is about to train; return the number of epochs (:func:`n_epochs`)."""
    logger.info("training %d member(s) (seeds %s) on %s: %d galaxies, %d validation, %d steps/epoch, "
                "amp=%s channels_last=%s compile=%s fused=%s cuda_graph=%s", len(seeds), list(seeds), sp.device, n,
                n_val, math.ceil(n / cfg.batch_size), sp.amp, sp.channels_last, sp.compile, sp.fused, sp.graph)
    epochs = n_epochs(cfg, n)
    if epochs != cfg.epochs:
        logger.info("%d epochs instead of %d: %d steps per epoch, min_iterations %d", epochs, cfg.epochs,
                    math.ceil(n / cfg.batch_size), cfg.min_iterations)
    return epochs


def train_members(cfg, train, val, seeds, out_dirs, stop_after_iterations=None, logger=None):
    """Train one member per seed; member ``m`` writes to ``out_dirs[m]``.

    Parameters
    ----------
    cfg : TrainConfig
    train, val : ``(source, z, ebv)``: the image source (``len`` and ``batch(idx)``; see
        ``photoz.nn.data``), the spectroscopic redshifts and E(B-V) (numpy)
    seeds : list of int, one per member
    out_dirs : list of directories; each receives ``checkpoint.pt``, ``best.pt``,
        ``average.pt``, ``metrics.csv`` and, while running, ``resume.pt``
    stop_after_iterations : int, optional
        Simulate a kill: return (without finishing) once this many iterations
        have run in this call. For tests.

    Returns the list of each member's metrics rows (None after a simulated kill).
    """
    logger = logger or log
    sp = SpeedSettings.resolve(cfg)
    _configure_torch(cfg, sp)
    G, n = len(seeds), len(train[0])
    if n == 0:
        raise ValueError("train_members: no training galaxies")
    out_dirs = [Path(d) for d in out_dirs]
    data, val = _as_tensors(cfg, sp, train, val)
    nets, opts, fwds = _build(cfg, sp, seeds)
    fp = dict(cfg.fingerprint(), seeds=list(map(int, seeds)), n_train=n)
    run = _Members(cfg, list(seeds), fp, out_dirs, average_window(cfg, n))
    st = _resume(nets, opts, fp, seeds, [d / RESUME_NAME for d in out_dirs], logger)
    targets = class_targets(cfg, sp.device)
    full = partial(train_step, fwds, opts, amp=sp.amp, targets=targets)
    if sp.graph:
        full = GraphedStep(fwds, opts, (G, cfg.batch_size), sp.amp, sp.device, targets=targets)
    steps = (full, partial(train_step, list(nets), opts, amp=sp.amp, targets=targets))
    writers = _tensorboard_writers(out_dirs)
    epochs = _announce(cfg, sp, seeds, n, len(val[0]), logger)
    budget = [stop_after_iterations]
    nets.train()
    for epoch in range(st.start_epoch, epochs):
        if st.iteration >= cfg.max_iterations:
            break
        t0 = time.time()
        done = _train_epoch(cfg, sp, steps, data, seeds, epoch, st, budget)
        if done is None:
            logger.warning("stopping after %d iterations (simulated kill)", stop_after_iterations)
            return None
        train_loss, n_seen = done
        vals = _validate(cfg, sp, list(nets), val, G)
        seconds = time.time() - t0
        rows = [{"epoch": epoch + 1, "iteration": st.iteration, "train_loss": float(train_loss[g]),
                 "seconds": seconds, **vals[g]} for g in range(G)]
        last = epoch + 1 >= epochs or st.iteration >= cfg.max_iterations
        _epoch_end(run, nets, opts, st, rows, (epochs, last, n_seen), writers, logger)
    if writers:
        for w in writers:
            w.close()
    _finish(st, out_dirs, _averages(run, sp, nets, st, val, logger))
    return st.history


# --------------------------------------------------------------------------
# command line


def member_seed(master_seed, trial, fold, member):
    """Initialisation/batch seed of ensemble member ``member`` of ``trial``, fold ``fold``."""
    import zlib

    ss = np.random.SeedSequence([int(master_seed), zlib.crc32(str(trial).encode()), int(fold), int(member)])
    return int(ss.generate_state(1, dtype=np.uint32)[0])


def _parser():
    import argparse

    ap = argparse.ArgumentParser(prog="photoz train", description="Train ensemble members of one trial and fold.")
    ap.add_argument("--shards", default="results/shards", help="directory with shard-*.npy and catalog.parquet")
    ap.add_argument("--split-npz", help="read the split from this .npz instead of the catalog (no pandas needed)")
    ap.add_argument("--export-split", help="write the split to this .npz and exit")
    ap.add_argument("--trial", required=True)
    ap.add_argument("--trial-json", required=True,
                    help="the trial's config entry (JSON; with --split-npz only its ebv_input is read)")
    ap.add_argument("--fold", type=int, default=0)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0], help="member numbers; several train stacked in one process")
    ap.add_argument("--master-seed", type=int, required=True, help="the config's seed: each member's seed derives from it")
    ap.add_argument("--config-json", required=True, help='{"training": {...}, "network": {...}, "bins": {...}}: the '
                    "validated config's training section, the trial's network and the bins")
    ap.add_argument("--out-root", default="results/models", help="members go to OUT_ROOT/<trial>/fold<f>/seed<s>/")
    ap.add_argument("--compile-cache", help="torch.compile's on-disk cache (TORCHINDUCTOR_CACHE_DIR), shared by "
                    "the jobs of a run so that only the first compiles each network shape")
    ap.add_argument("--force", action="store_true",
                    help="retrain members that already finished with the same settings (default: skip them)")
    ap.add_argument("--log")
    return ap


def _members_to_train(a, cfg, n_train, logger):
    """``(seeds, out_dirs)`` of the asked-for members that have not finished with these settings (all with --force)."""
    seeds = [member_seed(a.master_seed, a.trial, a.fold, s) for s in a.seeds]
    out_dirs = [Path(a.out_root) / a.trial / f"fold{a.fold}" / f"seed{s}" for s in a.seeds]
    todo = [g for g, (seed, d) in enumerate(zip(seeds, out_dirs))
            if a.force or not finished_member(d, dict(cfg.fingerprint(), seeds=[seed], n_train=n_train))]
    for g in sorted(set(range(len(seeds))) - set(todo)):
        logger.info("member %d (%s) already trained with these settings: kept (--force retrains it)", a.seeds[g], out_dirs[g])
    return [seeds[g] for g in todo], [out_dirs[g] for g in todo]


def _sources(a, cfg, parts):
    """The training and validation image sources (resident in device memory or memory-mapped)."""
    from .data import ShardStore, make_source

    device = resolve_device(cfg.device)
    if not a.split_npz:
        try:  # cheap check (shapes and sizes) of the shards against their manifest
            from photoz.dataset.shards import verify_manifest
        except ImportError:
            verify_manifest = None
        if verify_manifest is not None and (Path(a.shards) / "manifest.json").exists():
            verify_manifest(a.shards, checksums=False)
    store = ShardStore(a.shards)
    dtype = torch.bfloat16 if cfg.resident_dtype == "bfloat16" and device.type == "cuda" else torch.float32
    resident = {"true": True, "false": False}.get(str(cfg.resident).lower(), "auto")
    return (make_source(store, parts["train"], device, resident, dtype),
            make_source(store, parts["val"], device, resident, dtype))


def main(argv=None):
    """``python -m photoz train``: train members of one trial and fold."""
    import resource

    from photoz.io import setup_logging

    from .data import SplitArrays, split_from_catalog

    a = _parser().parse_args(argv)
    logger = setup_logging(a.log, name="photoz")
    if a.compile_cache:
        Path(a.compile_cache).mkdir(parents=True, exist_ok=True)
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(Path(a.compile_cache).resolve())
    cfgd = json.loads(a.config_json)
    trial = json.loads(a.trial_json)
    cfg = TrainConfig.from_dicts(cfgd.get("training"), cfgd.get("network"), cfgd.get("bins"),
                                 ebv_input=trial["ebv_input"])
    if a.split_npz:
        parts = SplitArrays.load_npz(a.split_npz)
    else:
        parts = split_from_catalog(Path(a.shards) / "catalog.parquet", trial, a.fold)
    if a.export_split:
        SplitArrays.save_npz(a.export_split, parts)
        logger.info("split written to %s", a.export_split)
        return 0
    seeds, out_dirs = _members_to_train(a, cfg, len(parts["train"]), logger)
    if not seeds:
        return 0
    tr, va = parts["train"], parts["val"]
    t0 = time.time()
    train_src, val_src = _sources(a, cfg, parts)
    logger.info("trial %s fold %d: %d train, %d validation galaxies loaded in %.1f s (%s)", a.trial, a.fold, len(tr),
                len(va), time.time() - t0, type(train_src).__name__)
    train_members(cfg, (train_src, tr.z, tr.ebv), (val_src, va.z, va.ebv), seeds, out_dirs, logger=logger)
    ru = resource.getrusage(resource.RUSAGE_SELF)
    logger.info("done in %.1f s wall, %.1f s CPU", time.time() - t0, ru.ru_utime + ru.ru_stime)
    return 0
