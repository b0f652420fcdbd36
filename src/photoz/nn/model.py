"""The inception CNN of Pasquet et al. (2019), written for one or several members.

The published network (see ``shared/reference/architecture.md``) takes a
64x64x5 ugriz cube and the galaxy's E(B-V) and returns 180 logits whose
softmax is the redshift PDF. With ``width=1.0, dense=1096`` it has exactly
27,596,372 trainable parameters.

Every layer here is written for ``members`` independent copies of the network
evaluated side by side ("stacked ensemble"): convolutions are grouped
convolutions with ``groups=members``, the dense layers batched matrix
products. Member ``g`` sees only its own input channels ``[5g, 5g+5)`` and its
own weights, so a stacked model is mathematically ``members`` separate
published networks, each with its own initialisation (from its own seed) and
its own batches; it only runs them in the same kernels, which raises GPU
throughput at small per-model batches. ``members=1`` is the plain network.

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
    "GroupedConv",
    "GroupedDense",
    "avg_pool_same",
    "count_parameters",
    "layer_table",
    "member_state_dict",
    "stack_state_dicts",
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
    key = (h, w, k, s, x.device, x.dtype)
    scale = _POOL_SCALE_CACHE.get(key)
    if scale is None:
        ones = torch.ones(1, 1, h, w, device=x.device, dtype=torch.float32)
        frac = F.avg_pool2d(F.pad(ones, pad), k, s)
        scale = (1.0 / frac).to(x.dtype)
        if len(_POOL_SCALE_CACHE) > 64:
            _POOL_SCALE_CACHE.clear()
        _POOL_SCALE_CACHE[key] = scale
    return out * scale


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
# layers for ``members`` stacked networks


class GroupedConv(nn.Module):
    """k x k convolution, stride 1, 'same' padding, bias, per-channel PReLU.

    Input ``(B, G*cin, H, W)``, output ``(B, G*cout, H, W)``: member ``g`` maps
    its channels ``[g*cin, (g+1)*cin)`` to ``[g*cout, (g+1)*cout)``.
    """

    def __init__(self, cin, cout, k, members=1, prelu=True):
        super().__init__()
        self.cin, self.cout, self.k, self.members = cin, cout, k, members
        self.conv = nn.Conv2d(members * cin, members * cout, k, padding=k // 2, groups=members, bias=True)
        self.act = nn.PReLU(members * cout, init=0.0) if prelu else None

    def forward(self, x):
        x = self.conv(x)
        return self.act(x) if self.act is not None else x

    def reset_member(self, g, generator):
        """Glorot-uniform weights, bias 0.1, PReLU slope 0 for member ``g``."""
        fan_in, fan_out = self.cin * self.k * self.k, self.cout * self.k * self.k
        bound = math.sqrt(6.0 / (fan_in + fan_out))
        sl = slice(g * self.cout, (g + 1) * self.cout)
        with torch.no_grad():
            w = torch.empty(self.cout, self.cin, self.k, self.k)
            w.uniform_(-bound, bound, generator=generator)
            self.conv.weight[sl] = w.to(self.conv.weight)
            self.conv.bias[sl] = 0.1
            if self.act is not None:
                self.act.weight[sl] = 0.0


class GroupedDense(nn.Module):
    """Dense layer for ``members`` networks: input ``(G, B, nin)`` -> ``(G, B, nout)``."""

    def __init__(self, nin, nout, members=1, relu=True):
        super().__init__()
        self.nin, self.nout, self.members, self.relu = nin, nout, members, relu
        self.weight = nn.Parameter(torch.empty(members, nin, nout))
        self.bias = nn.Parameter(torch.empty(members, 1, nout))

    def forward(self, x):
        y = torch.baddbmm(self.bias, x, self.weight)
        return F.relu(y) if self.relu else y

    def reset_member(self, g, generator):
        bound = math.sqrt(6.0 / (self.nin + self.nout))
        with torch.no_grad():
            w = torch.empty(self.nin, self.nout)
            w.uniform_(-bound, bound, generator=generator)
            self.weight[g] = w.to(self.weight)
            self.bias[g] = 0.1

    def extra_repr(self):
        return f"{self.nin} -> {self.nout}, members={self.members}, relu={self.relu}"


class Inception(nn.Module):
    """Inception module (nbS1, nbS2): four parallel branches, concatenated.

    1. conv(1, nbS2); 2. conv(1, nbS1) -> conv(5, nbS2) (absent if
    ``with_5x5`` is false); 3. conv(1, nbS1) -> conv(3, nbS2);
    4. conv(1, nbS1) -> 2x2 average pooling, stride 1.
    """

    def __init__(self, cin, nb1, nb2, members=1, with_5x5=True):
        super().__init__()
        self.members, self.with_5x5 = members, with_5x5
        self.b1 = GroupedConv(cin, nb2, 1, members)
        if with_5x5:
            self.b2a = GroupedConv(cin, nb1, 1, members)
            self.b2b = GroupedConv(nb1, nb2, 5, members)
        self.b3a = GroupedConv(cin, nb1, 1, members)
        self.b3b = GroupedConv(nb1, nb2, 3, members)
        self.b4a = GroupedConv(cin, nb1, 1, members)
        self.pool = AvgPoolSame(2, 1)
        self.split = [nb2] + ([nb2] if with_5x5 else []) + [nb2, nb1]
        self.cout = sum(self.split)
        self.merge_heads = False  # see _merged_heads; PhotoZNet.set_fused

    def heads(self):
        """The 1x1 convolutions that read the module's input, in output order."""
        return [self.b1] + ([self.b2a] if self.with_5x5 else []) + [self.b3a, self.b4a]

    def _merged_heads(self, x):
        """All 1x1 convolutions (+ PReLU) on ``x`` as ONE convolution, split per branch.

        The same weights as running each head alone (concatenated per member at
        every call, so parameters, initialisation and checkpoints are those of
        the separate layers), but the input is read once and one kernel runs
        instead of three or four: the reduced network's convolutions have so
        few channels that they are bound by memory traffic, not arithmetic.
        """
        heads, g = self.heads(), self.members
        cin = heads[0].cin
        w = torch.cat([h.conv.weight.reshape(g, h.cout, cin, 1, 1) for h in heads], 1)
        b = torch.cat([h.conv.bias.reshape(g, h.cout) for h in heads], 1)
        a = torch.cat([h.act.weight.reshape(g, h.cout) for h in heads], 1)
        total = w.shape[1]
        y = F.conv2d(x, w.reshape(g * total, cin, 1, 1), b.reshape(-1), groups=g)
        y = F.prelu(y, a.reshape(-1))
        sizes = [h.cout for h in heads]
        if g == 1:
            return list(torch.split(y, sizes, dim=1))
        bsz, _, hh, ww = y.shape
        parts = torch.split(y.reshape(bsz, g, total, hh, ww), sizes, dim=2)
        return [p.reshape(bsz, g * c, hh, ww) for p, c in zip(parts, sizes)]

    def branches(self, x):
        if self.merge_heads:
            hs = self._merged_heads(x)
        else:
            hs = [h(x) for h in self.heads()]
        out = [hs[0]]
        i = 1
        if self.with_5x5:
            out.append(self.b2b(hs[i]))
            i += 1
        out.append(self.b3b(hs[i]))
        out.append(self.pool(hs[i + 1]))
        return out

    def forward(self, x):
        out = self.branches(x)
        g = self.members
        if g == 1:
            return torch.cat(out, dim=1)
        b, _, h, w = x.shape
        if all(o.is_contiguous(memory_format=torch.channels_last) for o in out):
            # channels-last: concatenate per member in (B, H, W, G, C) without copies to NCHW
            out = [o.permute(0, 2, 3, 1).reshape(b, h, w, g, o.shape[1] // g) for o in out]
            return torch.cat(out, dim=4).reshape(b, h, w, g * self.cout).permute(0, 3, 1, 2)
        out = [o.reshape(b, g, o.shape[1] // g, h, w) for o in out]
        return torch.cat(out, dim=2).reshape(b, g * self.cout, h, w)


class PhotoZNet(nn.Module):
    """The published photo-z CNN, optionally ``members`` of them stacked.

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
    members : int
        Number of independent networks evaluated side by side.
    seeds : sequence of int, optional
        One initialisation seed per member (default ``0..members-1``).

    Inputs of ``forward``: ``images`` of shape ``(B, 5, 64, 64)`` (one batch
    for all members) or ``(G, B, 5, 64, 64)`` (one batch per member), and
    ``ebv`` of shape ``(B,)`` or ``(G, B)``. Output: logits ``(B, n_bins)``
    when ``members == 1`` and a 4-D input was given, else ``(G, B, n_bins)``.
    """

    def __init__(self, width=1.0, dense=1096, n_bins=180, ebv_input=True, members=1, seeds=None):
        super().__init__()
        self.width, self.dense, self.n_bins = float(width), int(dense), int(n_bins)
        self.ebv_input, self.members = bool(ebv_input), int(members)
        self.channels_last = False  # set by set_channels_last()
        g = self.members
        c1 = _scaled(C1_MAPS, width)
        self.c1 = GroupedConv(N_BANDS, c1, 5, g)
        self.p1 = AvgPoolSame(2, 2)
        cin = c1
        mods = []
        for i, (nb1, nb2) in enumerate(INCEPTION):
            m = Inception(cin, _scaled(nb1, width), _scaled(nb2, width), g, with_5x5=(i < len(INCEPTION) - 1))
            mods.append(m)
            cin = m.cout
        self.i0, self.i1, self.i2, self.i3, self.i4 = mods
        self.p4 = AvgPoolSame(2, 2)
        self.p7 = AvgPoolSame(2, 2)
        self.flat_features = cin * (IMAGE_SIZE // 8) ** 2
        nin = self.flat_features + (1 if self.ebv_input else 0)
        self.fc1 = GroupedDense(nin, self.dense, g, relu=True)
        self.fc2 = GroupedDense(self.dense, self.dense, g, relu=True)
        self.fc3 = GroupedDense(self.dense, self.n_bins, g, relu=False)
        seeds = list(range(g)) if seeds is None else [int(s) for s in seeds]
        if len(seeds) != g:
            raise ValueError(f"PhotoZNet: {g} members need {g} seeds, got {len(seeds)}")
        for k, s in enumerate(seeds):
            self.reset_member(k, s)

    def set_channels_last(self, on=True):
        """Channels-last memory format for weights and activations (faster convolutions on GPUs)."""
        self.channels_last = bool(on)
        return self.to(memory_format=torch.channels_last if on else torch.contiguous_format)

    def set_fused(self, on=True):
        """Fused layers, or the plain layer-by-layer form of the network (the default).

        Fused: each inception module's 1x1 convolutions (and their PReLUs) run
        as one convolution on the module's input. Both forms compute the same
        function with the same parameters (equal up to float rounding;
        ``tests/test_nn_speed.py``). Measured on the 2-core CPU it is no faster
        than channels-last alone eagerly, and 7-12% faster compiled with bf16
        (``benchmarks/bench_train_cpu.txt``): ``TrainConfig.fused`` ``auto`` turns
        it on where training is compiled on a CPU. Returns the model.
        """
        for m in self.modules():
            if isinstance(m, Inception):
                m.merge_heads = bool(on)
        return self

    def config(self):
        """The constructor arguments (without seeds), for checkpoints."""
        return {"width": self.width, "dense": self.dense, "n_bins": self.n_bins,
                "ebv_input": self.ebv_input, "members": self.members}

    def reset_member(self, g, seed):
        """(Re-)initialise member ``g`` from ``seed`` alone (independent of ``g``)."""
        gen = torch.Generator().manual_seed(int(seed))
        for mod in self.modules():
            if isinstance(mod, (GroupedConv, GroupedDense)):
                mod.reset_member(g, gen)

    def features(self, x):
        """Convolutional part: ``(B, G*5, 64, 64)`` -> ``(B, G*C, 8, 8)``."""
        x = self.p1(self.c1(x))
        x = self.i1(self.i0(x))
        x = self.p4(x)
        x = self.i3(self.i2(x))
        x = self.p7(x)
        return self.i4(x)

    def forward(self, images, ebv=None):
        g = self.members
        squeeze = images.dim() == 4 and g == 1
        if images.dim() == 4:
            images = images.unsqueeze(0).expand(g, *images.shape)
            if ebv is not None and ebv.dim() == 1:
                ebv = ebv.unsqueeze(0).expand(g, ebv.shape[0])
        if images.shape[0] != g:
            raise ValueError(f"PhotoZNet: expected {g} member batches, got {images.shape[0]}")
        b = images.shape[1]
        # (G, B, 5, H, W) -> (B, G*5, H, W): member g reads channels [5g, 5g+5)
        x = images.transpose(0, 1).reshape(b, g * N_BANDS, *images.shape[-2:])
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        x = self.features(x)
        # (B, G*C, 8, 8) -> (G, B, C*64), flattened per member in (C, H, W) order
        x = x.contiguous().reshape(b, g, -1).transpose(0, 1)
        if self.ebv_input:
            if ebv is None:
                raise ValueError("PhotoZNet: this network takes E(B-V) (ebv_input=True) but none was given")
            x = torch.cat([x, ebv.reshape(g, b, 1).to(x.dtype)], dim=2)
        x = self.fc3(self.fc2(self.fc1(x)))
        return x[0] if squeeze else x


def build_model(network, n_bins=180, ebv_input=True, members=1, seeds=None):
    """A :class:`PhotoZNet` from a config ``networks`` entry ``{width, dense}``."""
    return PhotoZNet(width=network.get("width", 1.0), dense=network.get("dense", 1096), n_bins=n_bins,
                     ebv_input=ebv_input, members=members, seeds=seeds)


def count_parameters(model, per_member=True):
    """Trainable parameters (of one member when ``per_member``)."""
    n = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return n // model.members if per_member else n


# --------------------------------------------------------------------------
# members in and out of stacks


def member_state_dict(model_or_state, g, members=None):
    """State dict of member ``g`` alone, loadable into a ``members=1`` model."""
    if isinstance(model_or_state, nn.Module):
        state, members = model_or_state.state_dict(), model_or_state.members
    else:
        state = model_or_state
        if members is None:
            raise ValueError("member_state_dict: give members= with a state dict")
    out = {}
    for key, t in state.items():
        if key.endswith((".weight", ".bias")) and (".fc" in "." + key):
            out[key] = t[g:g + 1].clone()
        else:
            n = t.shape[0] // members
            out[key] = t[g * n:(g + 1) * n].clone()
    return out


def stack_state_dicts(states):
    """Inverse of :func:`member_state_dict`: one stacked state from single ones."""
    return {key: torch.cat([s[key] for s in states], dim=0) for key in states[0]}


# --------------------------------------------------------------------------
# Table A1 / Fig. 4


def _conv_row(stage, op, mod, shape):
    return {"stage": stage, "operation": op, "kernel": f"{mod.k}x{mod.k}", "maps": mod.cout,
            "output": shape, "params": sum(p.numel() for p in mod.parameters()) // mod.members}


def layer_table(model):
    """Rows ``(stage, operation, kernel, maps, output, params)`` of the network.

    Generated from the model object by running one dummy galaxy through it;
    ``output`` is ``"HxWxC"`` (or ``"N"`` for vectors), ``params`` counts the
    trainable parameters of one member. The last row is the total.
    """
    m = model
    g = m.members
    dev = next(m.parameters()).device
    rows = []

    def shp(t):
        return f"{t.shape[-2]}x{t.shape[-1]}x{t.shape[1] // g}"

    with torch.no_grad():
        x = torch.zeros(1, g * N_BANDS, IMAGE_SIZE, IMAGE_SIZE, device=dev)
        x = m.c1(x)
        rows.append(_conv_row("C1", "convolution + PReLU", m.c1, shp(x)))
        x = m.p1(x)
        rows.append({"stage": "P1", "operation": "average pooling, stride 2", "kernel": "2x2",
                     "maps": x.shape[1] // g, "output": shp(x), "params": 0})
        conv_no = 2
        for name, mod in [("I0", m.i0), ("I1", m.i1), ("P4", m.p4), ("I2", m.i2), ("I3", m.i3), ("P7", m.p7), ("I4", m.i4)]:
            if isinstance(mod, AvgPoolSame):
                x = mod(x)
                rows.append({"stage": name, "operation": "average pooling, stride 2", "kernel": "2x2",
                             "maps": x.shape[1] // g, "output": shp(x), "params": 0})
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
            params = sum(p.numel() for p in mod.parameters()) // g
            rows.append({"stage": f"{name} (C{conv_no}-C{last})", "operation": "inception module",
                         "kernel": "1x1, 3x3" + (", 5x5" if mod.with_5x5 else "") + ", pool 2x2",
                         "maps": mod.cout, "output": shp(x), "params": params})
            for label, conv, _ in convs:
                h, w = x.shape[-2:]
                rows.append({"stage": f"  C{conv_no}", "operation": f"convolution {label} + PReLU",
                             "kernel": f"{conv.k}x{conv.k}", "maps": conv.cout,
                             "output": f"{h}x{w}x{conv.cout}",
                             "params": sum(p.numel() for p in conv.parameters()) // g})
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
