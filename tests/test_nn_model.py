"""The published CNN: parameter count, layer shapes, initialisation, pooling, members, old checkpoints."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from photoz.nn.model import Members, PhotoZNet, avg_pool_same, count_parameters, layer_table
from photoz.nn.train import load_member

DATA = Path(__file__).parent / "data"

# (stage prefix, output H x W x C, parameters) from shared/reference/architecture.md
PUBLISHED = [
    ("C1", "64x64x64", 8128),
    ("P1", "32x32x64", 0),
    ("I0", "32x32x240", 118432),
    ("I1", "32x32x340", 269288),
    ("P4", "16x16x340", 0),
    ("I2", "16x16x476", 539064),
    ("I3", "16x16x476", 594008),
    ("P7", "8x8x476", 0),
    ("I4", "8x8x348", 255376),
    ("F", "22273", 0),
    ("FC1", "1096", 24412304),
    ("FC2", "1096", 1202312),
    ("FC3", "180", 197460),
]


@pytest.fixture(scope="module")
def full():
    torch.manual_seed(0)
    return PhotoZNet()


def test_parameter_count(full):
    assert count_parameters(full) == 27_596_372
    n_prelu = sum(p.numel() for n, p in full.named_parameters() if n.endswith("act.weight"))
    n_bias = sum(p.numel() for n, p in full.named_parameters() if n.endswith("bias"))
    assert n_prelu == 2628
    assert n_bias == 5000


def test_layer_table_matches_published(full):
    rows = [r for r in layer_table(full) if r["stage"] and not r["stage"].startswith(" ")]
    got = {r["stage"].split()[0]: (r["output"], r["params"]) for r in rows}
    for stage, shape, params in PUBLISHED:
        assert got[stage] == (shape, params), stage
    assert got["total"][1] == 27_596_372
    # 29 convolutions C1..C29, each listed
    convs = [r for r in layer_table(full) if r["stage"].strip().startswith("C")]
    assert [int(r["stage"].strip()[1:]) for r in convs] == list(range(1, 30))


def test_every_layer_output_shape(full):
    x = torch.randn(2, 5, 64, 64)
    shapes = {}
    hooks = [m.register_forward_hook(lambda mod, i, o, name=name: shapes.__setitem__(name, tuple(o.shape)))
             for name, m in full.named_children()]
    out = full(x, torch.rand(2))
    for h in hooks:
        h.remove()
    assert shapes["c1"] == (2, 64, 64, 64)
    assert shapes["p1"] == (2, 64, 32, 32)
    assert shapes["i0"] == (2, 240, 32, 32)
    assert shapes["i1"] == (2, 340, 32, 32)
    assert shapes["p4"] == (2, 340, 16, 16)
    assert shapes["i2"] == (2, 476, 16, 16)
    assert shapes["i3"] == (2, 476, 16, 16)
    assert shapes["p7"] == (2, 476, 8, 8)
    assert shapes["i4"] == (2, 348, 8, 8)
    assert shapes["fc1"] == (2, 1096) and shapes["fc2"] == (2, 1096) and shapes["fc3"] == (2, 180)
    assert out.shape == (2, 180)


def test_initialisation(full):
    w = full.i1.b2b.conv.weight.detach()  # 5x5, 64 -> 92 maps
    bound = math.sqrt(6.0 / (64 * 25 + 92 * 25))
    assert w.abs().max() <= bound and w.abs().max() > 0.9 * bound
    assert abs(float(w.std()) - bound / math.sqrt(3)) < 0.05 * bound
    for name, p in full.named_parameters():
        if name.endswith("bias"):
            assert torch.all(p == 0.1), name
        if name.endswith("act.weight"):
            assert torch.all(p == 0.0), name
    fb = math.sqrt(6.0 / (22273 + 1096))
    assert float(full.fc1.weight.detach().abs().max()) <= fb


def test_variants():
    small = PhotoZNet(width=0.25, dense=64)
    noebv = PhotoZNet(width=0.25, dense=64, ebv_input=False)
    assert count_parameters(small) - count_parameters(noebv) == 64
    assert small.i0.b1.cout == 16 and small.i4.cout == 2 * 32 + 23
    x = torch.randn(3, 5, 64, 64)
    assert noebv(x).shape == (3, 180)
    with pytest.raises(ValueError, match="E\\(B-V\\)"):
        small(x)
    rows = layer_table(noebv)
    assert rows[-1]["params"] == count_parameters(noebv)
    assert any(r["operation"] == "flatten" for r in rows)


def test_avg_pool_same_ignores_padding():
    x = torch.arange(16, dtype=torch.float32).reshape(1, 1, 4, 4)
    y = avg_pool_same(x, 2, 1)
    assert y.shape == x.shape
    a = x[0, 0].numpy()
    assert y[0, 0, 0, 0] == pytest.approx(a[:2, :2].mean())
    assert y[0, 0, 1, 3] == pytest.approx(a[1:3, 3].mean())  # right column: 2 real cells (TF pads right)
    assert y[0, 0, 3, 1] == pytest.approx(a[3, 1:3].mean())  # bottom row
    assert y[0, 0, 3, 3] == pytest.approx(a[3, 3])            # corner: one real cell
    z = avg_pool_same(x, 2, 2)
    assert z.shape == (1, 1, 2, 2) and z[0, 0, 1, 1] == pytest.approx(a[2:, 2:].mean())


def test_members_are_plain_networks_of_their_seeds():
    """Members holds one plain network per seed: the same weights and outputs as built alone."""
    seeds = [11, 29, 5]
    members = Members(seeds, width=0.125, dense=32)
    x = torch.randn(3, 4, 5, 64, 64)
    e = torch.rand(3, 4)
    out = members(x, e)
    assert out.shape == (3, 4, 180) and len(members) == 3
    for g, s in enumerate(seeds):
        single = PhotoZNet(width=0.125, dense=32, seed=s)
        for k, v in single.state_dict().items():
            assert torch.equal(v, members[g].state_dict()[k]), k
        assert torch.equal(single(x[g], e[g]), out[g])
    # different seeds give different networks
    assert not torch.equal(members[0].c1.conv.weight, members[1].c1.conv.weight)
    with pytest.raises(ValueError, match="3 member batches"):
        members(x[:2], e[:2])


def test_format2_checkpoint_loads_with_the_same_numbers(tmp_path):
    """A checkpoint written by the stacked model (format 2, dense layers as one-member stacks) loads into
    the plain network with the same weights and gives the logits it gave then (to float32 rounding: the
    CPU kernels' summation order depends on the thread count)."""
    ref = torch.load(DATA / "checkpoint_format2.pt", weights_only=False)
    torch.save(ref["checkpoint"], tmp_path / "best.pt")
    model, ck = load_member(tmp_path / "best.pt")
    assert ck["format"] == 2 and model.fc1.weight.dim() == 2
    for key, t in ref["checkpoint"]["model"].items():
        assert torch.equal(model.state_dict()[key].flatten(), t.flatten()), key
    with torch.no_grad():
        torch.testing.assert_close(model(ref["x"], ref["ebv"]), ref["logits"], rtol=1e-5, atol=1e-6)
