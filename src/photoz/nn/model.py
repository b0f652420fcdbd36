"""The inception CNN of Pasquet et al. (2019).

The published network (see ``shared/reference/architecture.md``) takes a
64x64x5 ugriz cube and the galaxy's E(B-V) and returns 180 logits whose
softmax is the redshift PDF. With ``width=1.0, dense=1096`` it has exactly
27,596,372 trainable parameters.

:class:`PhotoZNet` is one network, written top to bottom like the authors'
``network.py``: conv(k, n) layers (convolution + PReLU), average pooling that
ignores padded cells, inception modules, dense layers. An ensemble's members
trained in one process are :class:`Members`, a separate wrapper holding one
plain network per seed; how their steps share a GPU (streams in one CUDA
graph) is the training loop's business, not the network's.

Only torch (and the standard library) is imported, so the module runs on a
bare GPU machine.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "PhotoZNet",
    "Members",
    "Conv",
    "Dense",
    "avg_pool_same",
    "count_parameters",
    "layer_table",
    "upgrade_state_dict",
    "build_model",
]

N_BANDS = 5
IMAGE_SIZE = 64

# Published numbers of feature maps: C1 and the inception modules (nbS1, nbS2).
C1_MAPS = 64
INCEPTION = [(48, 64), (64, 92), (92, 128), (92, 128), (92, 128)]


def _scaled(n, width):
    """Number of maps ``n`` scaled by ``width`` (at least one)."""
    return max(1, int(round(n * width)))


# --------------------------------------------------------------------------
# pooling


_POOL_SCALE_CACHE: dict = {}


def _same_pads(size, k, s):
    """TensorFlow 'SAME' padding (before, after) along one axis."""
    out = -(-size // s)
    total = max((out - 1) * s + k - size, 0)
    return total // 2, total - total // 2


def avg_pool_same(x, k, s):
    """Average pooling with TensorFlow 'SAME' padding that ignores padded cells.

    TensorFlow pads an even kernel asymmetrically (the extra cell at the right
    and bottom) and ``tf.nn.avg_pool`` divides by the number of real cells in
    each window. The 2x2 stride-2 pools of the network need no padding on even
    sizes; the 2x2 stride-1 pool of the inception branch pads one row at the
    bottom and one column at the right.

    (PyTorch's pool with ``padding=1, count_include_pad=False`` minus its first
    row and column gives the same values without the padded copy, but its
    backward is twice slower in channels-last on the CPU: not used.)
    """
    h, w = x.shape[-2:]
    ph, pw = _same_pads(h, k, s), _same_pads(w, k, s)
    if ph == (0, 0) and pw == (0, 0):
        return F.avg_pool2d(x, k, s)
    pad = (pw[0], pw[1], ph[0], ph[1])
    out = F.avg_pool2d(F.pad(x, pad), k, s)
    if torch.compiler.is_compiling():  # a constant the compiler folds (a cache would be a guard on a global)
        return out * _pool_scale(h, w, k, s, pad, x.device, x.dtype)
    key = (h, w, k, s, x.device, x.dtype)
    scale = _POOL_SCALE_CACHE.get(key)
    if scale is None:
        scale = _pool_scale(h, w, k, s, pad, x.device, x.dtype)
        if len(_POOL_SCALE_CACHE) > 64:
            _POOL_SCALE_CACHE.clear()
        _POOL_SCALE_CACHE[key] = scale
    return out * scale


def _pool_scale(h, w, k, s, pad, device, dtype):
    """1 / (the fraction of real cells) of each window of a padded pooling."""
    ones = torch.ones(1, 1, h, w, device=device, dtype=torch.float32)
    return (1.0 / F.avg_pool2d(F.pad(ones, pad), k, s)).to(dtype)


class AvgPoolSame(nn.Module):
    """Module form of :func:`avg_pool_same` (for the layer table)."""

    def __init__(self, k, s):
        super().__init__()
        self.k, self.s = k, s

    def forward(self, x):
        return avg_pool_same(x, self.k, self.s)

    def extra_repr(self):
        return f"kernel={self.k}, stride={self.s}, padding=SAME (count excludes padding)"


# --------------------------------------------------------------------------
# the network, top to bottom as in the published network.py


class Conv(nn.Module):
    """conv(k, n): k x k convolution, stride 1, 'same' padding, bias, PReLU (one slope per map)."""

    def __init__(self, cin, cout, k):
        super().__init__()
        self.cin, self.cout, self.k = cin, cout, k
        self.conv = nn.Conv2d(cin, cout, k, padding=k // 2, bias=True)
        self.act = nn.PReLU(cout, init=0.0)

    def forward(self, x):
        return self.act(self.conv(x))

    def reset(self, generator):
        """Glorot-uniform weights, bias 0.1, PReLU slope 0 (a ReLU at the start)."""
        fan_in, fan_out = self.cin * self.k * self.k, self.cout * self.k * self.k
        bound = math.sqrt(6.0 / (fan_in + fan_out))
        with torch.no_grad():
            w = torch.empty(self.cout, self.cin, self.k, self.k)
            w.uniform_(-bound, bound, generator=generator)
            self.conv.weight.copy_(w)
            self.conv.bias.fill_(0.1)
            self.act.weight.fill_(0.0)


class Dense(nn.Module):
    """Fully connected layer ``x @ weight + bias`` (TensorFlow's layout: ``weight`` is ``(nin, nout)``), ReLU or none."""

    def __init__(self, nin, nout, relu=True):
        super().__init__()
        self.nin, self.nout, self.relu = nin, nout, relu
        self.weight = nn.Parameter(torch.empty(nin, nout))
        self.bias = nn.Parameter(torch.empty(nout))

    def forward(self, x):
        y = torch.addmm(self.bias, x, self.weight)
        return F.relu(y) if self.relu else y

    def reset(self, generator):
        bound = math.sqrt(6.0 / (self.nin + self.nout))
        with torch.no_grad():
            w = torch.empty(self.nin, self.nout)
            w.uniform_(-bound, bound, generator=generator)
            self.weight.copy_(w)
            self.bias.fill_(0.1)

    def extra_repr(self):
        return f"{self.nin} -> {self.nout}, relu={self.relu}"


class Inception(nn.Module):
    """Inception module (nbS1, nbS2): four parallel branches on the same input, concatenated.

    1. conv(1, nbS2); 2. conv(1, nbS1) -> conv(5, nbS2) (absent if
    ``with_5x5`` is false); 3. conv(1, nbS1) -> conv(3, nbS2);
    4. conv(1, nbS1) -> 2x2 average pooling, stride 1.
    """

    def __init__(self, cin, nb1, nb2, with_5x5=True):
        super().__init__()
        self.with_5x5 = with_5x5
        self.b1 = Conv(cin, nb2, 1)
        if with_5x5:
            self.b2a = Conv(cin, nb1, 1)
            self.b2b = Conv(nb1, nb2, 5)
        self.b3a = Conv(cin, nb1, 1)
        self.b3b = Conv(nb1, nb2, 3)
        self.b4a = Conv(cin, nb1, 1)
        self.pool = AvgPoolSame(2, 1)
        self.cout = nb2 + (nb2 if with_5x5 else 0) + nb2 + nb1
        self.merge_heads = False  # see _merged_heads; PhotoZNet.set_fused

    def heads(self):
        """The 1x1 convolutions that read the module's input, in output order."""
        return [self.b1] + ([self.b2a] if self.with_5x5 else []) + [self.b3a, self.b4a]

    def _merged_heads(self, x):
        """All 1x1 convolutions (+ PReLU) on ``x`` as ONE convolution, split per branch.

        The same weights as running each head alone (concatenated at every
        call, so parameters, initialisation and checkpoints are those of the
        separate layers), but the input is read once and one kernel runs
        instead of three or four: the reduced network's convolutions have so
        few channels that they are bound by memory traffic, not arithmetic.
        """
        heads = self.heads()
        w = torch.cat([h.conv.weight for h in heads])
        b = torch.cat([h.conv.bias for h in heads])
        a = torch.cat([h.act.weight for h in heads])
        y = F.prelu(F.conv2d(x, w, b), a)
        return list(torch.split(y, [h.cout for h in heads], dim=1))

    def branches(self, x):
        hs = self._merged_heads(x) if self.merge_heads else [h(x) for h in self.heads()]
        out = [hs[0]]
        if self.with_5x5:
            out.append(self.b2b(hs[1]))
        out.append(self.b3b(hs[-2]))
        out.append(self.pool(hs[-1]))
        return out

    def forward(self, x):
        return torch.cat(self.branches(x), dim=1)


class PhotoZNet(nn.Module):
    """The published photo-z CNN: one network, read top to bottom in ``forward``.

    Parameters
    ----------
    width : float
        Multiplier on the published numbers of feature maps (1.0: published).
    dense : int
        Units of FC1 and FC2 (1096: published).
    n_bins : int
        Output classes (180).
    ebv_input : bool
        Concatenate E(B-V) after the flattened convolutional features.
    seed : int
        Initialisation seed (the weights depend on it alone).

    ``forward(images (B, 5, 64, 64), ebv (B,))`` returns the logits ``(B, n_bins)``
    (the PDF is their softmax). Several networks trained together (an ensemble's
    members) are the separate wrapper :class:`Members`.
    """

    def __init__(self, width=1.0, dense=1096, n_bins=180, ebv_input=True, seed=0):
        super().__init__()
        self.width, self.dense, self.n_bins = float(width), int(dense), int(n_bins)
        self.ebv_input = bool(ebv_input)
        self.channels_last = False  # set by set_channels_last()
        c1 = _scaled(C1_MAPS, width)
        self.c1 = Conv(N_BANDS, c1, 5)
        self.p1 = AvgPoolSame(2, 2)
        cin, mods = c1, []
        for i, (nb1, nb2) in enumerate(INCEPTION):
            mods.append(Inception(cin, _scaled(nb1, width), _scaled(nb2, width), with_5x5=(i < len(INCEPTION) - 1)))
            cin = mods[-1].cout
        self.i0, self.i1, self.i2, self.i3, self.i4 = mods
        self.p4 = AvgPoolSame(2, 2)
        self.p7 = AvgPoolSame(2, 2)
        self.flat_features = cin * (IMAGE_SIZE // 8) ** 2
        self.fc1 = Dense(self.flat_features + (1 if self.ebv_input else 0), self.dense)
        self.fc2 = Dense(self.dense, self.dense)
        self.fc3 = Dense(self.dense, self.n_bins, relu=False)
        self.reset(seed)

    def reset(self, seed):
        """(Re-)initialise every layer from ``seed`` alone, in layer order."""
        gen = torch.Generator().manual_seed(int(seed))
        for mod in self.modules():
            if isinstance(mod, (Conv, Dense)):
                mod.reset(gen)

    def set_channels_last(self, on=True):
        """Channels-last memory format for weights and activations (faster convolutions). Returns the model."""
        self.channels_last = bool(on)
        return self.to(memory_format=torch.channels_last if on else torch.contiguous_format)

    def set_fused(self, on=True):
        """Fused layers, or the plain layer-by-layer form of the network (the default).

        Fused: each inception module's 1x1 convolutions (and their PReLUs) run
        as one convolution on the module's input. Both forms compute the same
        function with the same parameters (equal up to float rounding;
        ``tests/test_nn_speed.py``). Measured on the 2-core CPU it is no faster
        than channels-last alone eagerly, and 7-12% faster compiled with bf16
        (``benchmarks/bench_train_cpu.txt``): ``training.fused: auto`` turns
        it on where training is compiled on a CPU. Returns the model.
        """
        for m in self.modules():
            if isinstance(m, Inception):
                m.merge_heads = bool(on)
        return self

    def config(self):
        """The constructor arguments (without the seed), for checkpoints."""
        return {"width": self.width, "dense": self.dense, "n_bins": self.n_bins, "ebv_input": self.ebv_input}

    def features(self, x):
        """Convolutional part: ``(B, 5, 64, 64)`` -> ``(B, C, 8, 8)``."""
        x = self.p1(self.c1(x))
        x = self.i1(self.i0(x))
        x = self.p4(x)
        x = self.i3(self.i2(x))
        x = self.p7(x)
        return self.i4(x)

    def forward(self, images, ebv=None):
        x = images.contiguous(memory_format=torch.channels_last) if self.channels_last else images
        x = self.features(x)
        x = x.contiguous().flatten(1)  # (B, C*8*8) in (C, H, W) order
        if self.ebv_input:
            if ebv is None:
                raise ValueError("PhotoZNet: this network takes E(B-V) (ebv_input=True) but none was given")
            x = torch.cat([x, ebv.reshape(-1, 1).to(x.dtype)], dim=1)
        return self.fc3(self.fc2(self.fc1(x)))


class Members(nn.Module):
    """Several :class:`PhotoZNet` trained together (an ensemble's members), each with its own seed.

    Nothing is shared: member ``g`` is exactly ``PhotoZNet(..., seed=seeds[g])``
    (same weights, same outputs). ``forward(images (G, B, 5, 64, 64), ebv (G, B))``
    returns ``(G, B, n_bins)``. The training loop runs the members' steps on
    separate CUDA streams inside one CUDA graph (``photoz.nn.train``), so
    members together keep a GPU busy that one member at batch 128 leaves idle.
    """

    def __init__(self, seeds, **network):
        super().__init__()
        self.seeds = [int(s) for s in seeds]
        if not self.seeds:
            raise ValueError("Members: give at least one seed")
        self.nets = nn.ModuleList(PhotoZNet(seed=s, **network) for s in self.seeds)

    def __len__(self):
        return len(self.nets)

    def __getitem__(self, g):
        return self.nets[g]

    def forward(self, images, ebv=None):
        if images.shape[0] != len(self.nets):
            raise ValueError(f"Members: expected {len(self.nets)} member batches, got {images.shape[0]}")
        return torch.stack([net(images[g], None if ebv is None else ebv[g]) for g, net in enumerate(self.nets)])


def build_model(network, n_bins=180, ebv_input=True, seed=0):
    """A :class:`PhotoZNet` from a config ``networks`` entry ``{width, dense}``."""
    return PhotoZNet(width=network["width"], dense=network["dense"], n_bins=n_bins, ebv_input=ebv_input, seed=seed)


def count_parameters(model):
    """Trainable parameters of one network."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


#: Checkpoints of format 2 held the dense layers of a one-member stack: weight ``(1, nin, nout)``,
#: bias ``(1, 1, nout)``. Every other tensor has the same name and shape in both formats.
def upgrade_state_dict(state):
    """A format-2 state dict (one-member stack) as the plain network's: the same numbers, the dense layers unstacked."""
    out = {}
    for key, t in state.items():
        if key.startswith("fc") and key.endswith(".weight") and t.dim() == 3:
            t = t[0]
        elif key.startswith("fc") and key.endswith(".bias") and t.dim() == 3:
            t = t.reshape(-1)
        out[key] = t
    return out


# --------------------------------------------------------------------------
# Table A1 / Fig. 4


def _conv_row(stage, op, mod, shape):
    return {"stage": stage, "operation": op, "kernel": f"{mod.k}x{mod.k}", "maps": mod.cout,
            "output": shape, "params": sum(p.numel() for p in mod.parameters())}


def layer_table(model):
    """Rows ``(stage, operation, kernel, maps, output, params)`` of the network.

    Generated from the model object by running one dummy galaxy through it;
    ``output`` is ``"HxWxC"`` (or ``"N"`` for vectors), ``params`` counts the
    trainable parameters. The last row is the total.
    """
    m = model
    dev = next(m.parameters()).device
    rows = []

    def shp(t):
        return f"{t.shape[-2]}x{t.shape[-1]}x{t.shape[1]}"

    with torch.no_grad():
        x = torch.zeros(1, N_BANDS, IMAGE_SIZE, IMAGE_SIZE, device=dev)
        x = m.c1(x)
        rows.append(_conv_row("C1", "convolution + PReLU", m.c1, shp(x)))
        x = m.p1(x)
        rows.append({"stage": "P1", "operation": "average pooling, stride 2", "kernel": "2x2",
                     "maps": x.shape[1], "output": shp(x), "params": 0})
        conv_no = 2
        for name, mod in [("I0", m.i0), ("I1", m.i1), ("P4", m.p4), ("I2", m.i2), ("I3", m.i3), ("P7", m.p7), ("I4", m.i4)]:
            if isinstance(mod, AvgPoolSame):
                x = mod(x)
                rows.append({"stage": name, "operation": "average pooling, stride 2", "kernel": "2x2",
                             "maps": x.shape[1], "output": shp(x), "params": 0})
                continue
            outs = mod.branches(x)
            convs = [("1x1", mod.b1, outs[0])]
            i = 1
            if mod.with_5x5:
                convs += [("1x1 (5x5 branch)", mod.b2a, None), ("5x5", mod.b2b, outs[i])]
                i += 1
            convs += [("1x1 (3x3 branch)", mod.b3a, None), ("3x3", mod.b3b, outs[i]),
                      ("1x1 (pool branch)", mod.b4a, outs[i + 1])]
            last = conv_no + len(convs) - 1
            x = mod(x)
            params = sum(p.numel() for p in mod.parameters())
            rows.append({"stage": f"{name} (C{conv_no}-C{last})", "operation": "inception module",
                         "kernel": "1x1, 3x3" + (", 5x5" if mod.with_5x5 else "") + ", pool 2x2",
                         "maps": mod.cout, "output": shp(x), "params": params})
            for label, conv, _ in convs:
                h, w = x.shape[-2:]
                rows.append({"stage": f"  C{conv_no}", "operation": f"convolution {label} + PReLU",
                             "kernel": f"{conv.k}x{conv.k}", "maps": conv.cout,
                             "output": f"{h}x{w}x{conv.cout}",
                             "params": sum(p.numel() for p in conv.parameters())})
                conv_no += 1
            rows.append({"stage": "", "operation": "  average pooling 2x2, stride 1 (pool branch)", "kernel": "2x2",
                         "maps": mod.b4a.cout, "output": f"{x.shape[-2]}x{x.shape[-1]}x{mod.b4a.cout}", "params": 0})
        nin = m.fc1.nin
        rows.append({"stage": "F", "operation": "flatten" + (" + E(B-V)" if m.ebv_input else ""), "kernel": "",
                     "maps": "", "output": str(nin), "params": 0})
        for name, fc in [("FC1", m.fc1), ("FC2", m.fc2), ("FC3", m.fc3)]:
            rows.append({"stage": name, "operation": "dense + ReLU" if fc.relu else "dense + softmax", "kernel": "",
                         "maps": "", "output": str(fc.nout), "params": (fc.nin + 1) * fc.nout})
    rows.append({"stage": "total", "operation": "trainable parameters", "kernel": "", "maps": "", "output": "",
                 "params": count_parameters(m)})
    return rows
