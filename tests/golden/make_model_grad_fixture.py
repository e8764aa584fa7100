"""Writes tests/fixtures/resnet10_grads_{static,dynamic,pad}.safetensors: the first training
step of a whole ResNet-10 (cifar stem, BatchNorm in train mode, label-smoothed cross-entropy as
`train` computes it) on a batch of 64 real Fashion-MNIST images in float64 — the reference for
every parameter gradient (and PAD's ∂L/∂M) of padnet-wgpu — and the yardstick of the bound:
PyTorch float32's own error on the same step (docs/numerics.md).

The yardstick of a tensor is the largest relative L2 error of PyTorch float32 over five
summation orders (the batch in its order and four permutations of it; the step is invariant
under them), each measured against float64 on float32's own side of every ReLU kink: where an
f32 activation lands on the other side of zero than the f64 one, the gradient changes by that
element's whole contribution — a property of the function, not of the arithmetic — so the f64
reference of each run takes that run's ReLU decisions (`forced`). The fixture stores the
unforced float64 gradients; the Rust test builds its own f64 reference on the GPU's side of
each kink with the CPU interpreter, after checking that interpreter against these.

Weights are drawn by the reference modules' init, then rounded to float16 (stored so: exact in
f32 and f64), so float64, float32 and padnet-wgpu all start from the same values. Run from the
repository root (needs torch and safetensors):
    python3 tests/golden/make_model_grad_fixture.py [--width 0.0625] [--batch 64] [--out DIR]
"""
import argparse
import gzip
import json

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save_file

import reference
from reference import PadConv2d, ResNet10

TEMPERATURES = (31.0, 30.0, 1.0)
SMOOTHING = 0.1
KAPPA = 0.5
ORDERS = 5  # summation orders PyTorch f32 is measured in (the batch and 4 permutations)
MEAN, STD = 0.2860, 0.3530  # src/data: Fashion-MNIST normalisation


def images(n):
    """The first n training images of the embedded Fashion-MNIST subset, normalised in float32
    exactly as src/data does ((p / 255 − mean) / std), and their labels."""
    with gzip.open("data/fashion-mnist-subset/train-images-idx3-ubyte.gz") as f:
        x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 1, 28, 28)[:n]
    with gzip.open("data/fashion-mnist-subset/train-labels-idx1-ubyte.gz") as f:
        y = np.frombuffer(f.read(), np.uint8, offset=8)[:n]
    x = (torch.tensor(x, dtype=torch.float32) / 255.0 - MEAN) / STD
    return x.double(), torch.tensor(y, dtype=torch.int64)


class Relus:
    """Replaces F.relu (which reference.py calls for every ReLU): `record` keeps each call's
    decisions (x > 0), `force` applies recorded decisions instead of the input's signs."""

    def __init__(self):
        self.mode, self.masks, self.at = None, [], 0

    def __call__(self, x):
        if self.mode == "record":
            self.masks.append((x > 0).detach())
        elif self.mode == "force":
            m = self.masks[self.at]
            self.at += 1
            return torch.where(m, x, torch.zeros_like(x))
        return torch.relu(x)


RELUS = Relus()
reference.F = type("F", (), {k: getattr(F, k) for k in dir(F) if not k.startswith("_")})
reference.F.relu = RELUS


def smoothed_ce(logits, labels, eps):
    """Mean over the batch of −Σ q log softmax, q = 1−ε on the label and ε/(C−1) elsewhere."""
    c = logits.shape[1]
    q = torch.full_like(logits, eps / (c - 1))
    q.scatter_(1, labels[:, None], 1.0 - eps)
    return -(q * F.log_softmax(logits, 1)).sum(1).mean()


def gradients(net, masks, x, labels, t, relu_mode=None):
    """Every parameter's gradient and (PAD) each mask's ∂L/∂M after one forward/backward."""
    net.zero_grad()
    for m in masks.values():
        m.grad = None
    RELUS.mode, RELUS.at = relu_mode, 0
    if relu_mode == "record":
        RELUS.masks = []
    loss = smoothed_ce(net(x, t), labels, SMOOTHING)
    RELUS.mode = None
    loss.backward()
    out = {n: p.grad.detach().clone() for n, p in net.named_parameters()}
    out.update({n: m.grad.detach().clone() for n, m in masks.items()})
    return loss.item(), out


def rel_l2(got, want):
    return ((got.double() - want).norm() / want.norm().clamp_min(1e-300)).item()


def build(mode, width, dtype, state=None):
    net = ResNet10(mode, width=width).to(dtype)
    if state is not None:
        net.load_state_dict({k: v.to(dtype) for k, v in state.items()})
    masks = {}
    for mod_name, mod in net.named_modules():
        if isinstance(mod, PadConv2d) and mod.pad:
            masks[mod_name + ".kernels_weights_mask"] = mod.kernels_weights_mask.requires_grad_(True)
    return net, masks


def case(mode, width, batch, out_dir):
    torch.manual_seed({"static": 0, "dynamic": 1, "pad": 2}[mode])
    net, masks = build(mode, width, torch.float64)
    with torch.no_grad():
        for p in net.parameters():  # exactly representable in f16, f32 and f64
            p.copy_(p.half().double())
        for m in masks.values():
            m.copy_((torch.rand(m.shape, dtype=torch.float64) < KAPPA).double())
    net32, masks32 = build(mode, width, torch.float32, net.state_dict())
    x, labels = images(batch)
    perms = [torch.arange(batch)] + [torch.randperm(batch) for _ in range(ORDERS - 1)]

    tensors = {"x": x.float(), "labels": labels.to(torch.uint8)}
    tensors.update({n: p.detach().half() for n, p in net.named_parameters()})
    tensors.update({n: m.detach().to(torch.uint8) for n, m in masks.items()})
    f32_error, losses, flips = {}, {}, {}
    temperatures = (1.0,) if mode == "static" else TEMPERATURES  # static has no attention
    for t in temperatures:
        tag = f"t{int(t)}"
        losses[tag], g64 = gradients(net, masks, x, labels, t)
        tensors.update({f"{tag}.grad.{n}": g.float() for n, g in g64.items()})
        worst = {n: 0.0 for n in g64}
        flips[tag] = 0
        for perm in perms:
            xp, lp = x[perm], labels[perm]
            _, g32 = gradients(net32, masks32, xp.float(), lp, t, "record")
            f32_masks = [m.clone() for m in RELUS.masks]
            _, _ = gradients(net, masks, xp, lp, t, "record")
            flips[tag] += sum(int((a != b).sum()) for a, b in zip(f32_masks, RELUS.masks))
            RELUS.masks = f32_masks
            _, g64_forced = gradients(net, masks, xp, lp, t, "force")
            for n in g64:
                worst[n] = max(worst[n], rel_l2(g32[n], g64_forced[n]))
        f32_error[tag] = worst
        top = sorted(worst.items(), key=lambda kv: -kv[1])[:3]
        print(f"{mode} T={t:g}: loss {losses[tag]:.6f}; PyTorch f32 kink flips {flips[tag]} in"
              f" {ORDERS} orders; largest f32 errors", ", ".join(f"{n} {e:.1e}" for n, e in top))
    meta = {"mode": mode, "width": str(width), "smoothing": str(SMOOTHING),
            "temperatures": json.dumps(temperatures), "loss": json.dumps(losses),
            "f32_error": json.dumps(f32_error), "f32_orders": str(ORDERS),
            "f32_flips": json.dumps(flips)}
    tensors = {k: v.detach().contiguous() for k, v in tensors.items()}
    save_file(tensors, f"{out_dir}/resnet10_grads_{mode}.safetensors", metadata=meta)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--width", type=float, default=0.0625)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--out", default="tests/fixtures")
    ap.add_argument("--modes", default="static,dynamic,pad")
    a = ap.parse_args()
    for mode in a.modes.split(","):
        case(mode, a.width, a.batch, a.out)
