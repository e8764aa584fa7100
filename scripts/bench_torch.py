#!/usr/bin/env python3
"""PyTorch's figures for padnet-wgpu's benchmark suites, written in the same record format
(schema padnet-bench/1, docs/benchmarks.md), so that `padnet-wgpu bench compare` puts both in
one table. Never run by CI; needs torch (and numpy).

    python3 scripts/bench_torch.py --json results/torch-cpu.json            # CPU
    python3 scripts/bench_torch.py --device cuda --json results/torch-h200.json
    python3 scripts/bench_torch.py --device cuda --precision f16 --filter gemm --json results/torch-h200-f16.json
    padnet-wgpu bench compare results/lavapipe.json results/torch-cpu.json

Workloads carry the names padnet-wgpu gives them (src/bench/kernels.rs, src/bench/models.rs)
and compute the same functions: GEMMs, convolutions and their gradients
(torch.nn.grad), DY-Conv and PAD-Conv as per-sample kernel assembly and one grouped
convolution (tests/golden/reference.py), PAD-MoE's mix, attention, LayerNorm, top-k MoE
routing; the `layers` suite's block convolutions and FFN projections; the `infer` suite's
ResNet-10 inference and MiniLM FFN projection; the `train` suite's ResNet-10 training steps
(and ResNet-18 ×1 at batch 64 on a GPU; MiniLM's training step needs `transformers` and is
left out). Each is checked against the same computation in
float64 on the CPU (first rows where outputs are independent along them), tolerance 1e-4
normwise as ours. TF32 is switched off so that CUDA computes in float32 as we do.
`--precision f16` runs everything under torch's float16 autocast (matrix products and
convolutions in float16), checked to 1e-2, as `bench --precision f16`.

Timing: CUDA events around `reps` repetitions on CUDA ("gpu-timestamp"), the host clock after
synchronising elsewhere ("wall-clock"); 2 warm-up runs, `reps` sized so a sample takes about
200 ms, median of --samples samples.
"""
import argparse
import copy
import datetime
import json
import math
import os
import platform
import socket
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "golden"))
import reference  # noqa: E402  (the golden fixtures' modules: ResNet10, PadConv2d)

TOLERANCE = 1e-4
TOLERANCE_F16 = 1e-2  # --precision f16, as padnet-wgpu's (src/bench/mod.rs)
WARMUP = 2
SAMPLE_MS = 200.0
MAX_REPS = 1000


def rel_err(got, want):
    scale = max(want.abs().max().item(), 1e-30)
    diff = (got.double() - want).abs().max().item()
    return math.inf if math.isnan(diff) else diff / scale


class Bench:
    def __init__(self, device, samples, name_filter, precision="f32"):
        self.device = torch.device(device)
        self.samples = samples
        self.cuda = self.device.type == "cuda"
        self.filter = name_filter
        self.precision = precision
        self.tolerance = TOLERANCE_F16 if precision == "f16" else TOLERANCE

    def autocast(self):
        """With --precision f16, matrix products and convolutions run in float16 (torch's
        autocast; on CUDA that may take tensor cores), as `bench --precision f16` multiplies
        GEMMs and convolutions in f16."""
        return torch.autocast(self.device.type, dtype=torch.float16, enabled=self.precision == "f16")

    def wanted(self, name):
        return self.filter is None or self.filter in name

    def sync(self):
        if self.cuda:
            torch.cuda.synchronize()
        elif self.device.type == "mps":
            torch.mps.synchronize()

    def time(self, fn, reps):
        if self.cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            with self.autocast():
                for _ in range(reps):
                    fn()
            end.record()
            torch.cuda.synchronize()
            return start.elapsed_time(end) / reps
        self.sync()
        t0 = time.perf_counter()
        with self.autocast():
            for _ in range(reps):
                fn()
        self.sync()
        return (time.perf_counter() - t0) * 1e3 / reps

    def measure(self, fn):
        """(samples in ms per repetition, reps), after WARMUP runs, as src/bench/timing.rs."""
        self.time(fn, 1)
        reps = max(1, min(MAX_REPS, int(SAMPLE_MS / max(self.time(fn, 1), 1e-3))))
        return [self.time(fn, reps) for _ in range(max(1, self.samples))], reps

    def method(self):
        return "gpu-timestamp" if self.cuda else "wall-clock"


def stats(samples):
    s = sorted(samples)
    n = len(s)
    median = s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])
    p95 = s[max(0, math.ceil(0.95 * n) - 1)]
    return {"median_ms": median, "min_ms": s[0], "p95_ms": p95}


def workload(b, suite, name, shapes, fn, check, flops=None, nbytes=None, items=None, unit=None):
    """Times `fn`, runs `check()` -> (error, method), and returns the record's workload."""
    samples, reps = b.measure(fn)
    st = stats(samples)
    sec = st["median_ms"] * 1e-3
    error, method = check()
    w = {
        "suite": suite,
        "name": name,
        "shapes": {k: list(v) for k, v in shapes.items()},
        "dtype": "f32",
        "timing": {"method": b.method(), "warmup": WARMUP, "samples": len(samples), "reps": reps},
        "samples_ms": samples,
        **st,
        "flops": flops,
        "bytes": nbytes,
        "gflops": flops / sec / 1e9 if flops else None,
        "gbs": nbytes / sec / 1e9 if nbytes else None,
        "pct_peak_flops": None,
        "pct_peak_bandwidth": None,
        "throughput": items / sec if items else None,
        "throughput_unit": unit,
        "memory_bytes": None,
        "check": {
            "correct": error is not None and error <= b.tolerance,
            "method": method,
            "error": error,
            "tolerance": b.tolerance,
        },
    }
    rate = f"{w['throughput']:.1f} {unit}" if items else (f"{w['gflops']:.1f} GFLOP/s" if flops else "-")
    print(f"{name:<64} {st['median_ms']:10.3f} {rate:>16} {'ok' if w['check']['correct'] else 'FAILED':>6}",
          flush=True)
    return w


def graph_case(b, suite, name, inputs, fn, rows=None, sliced=(), ref_fn=None, flops=None, unit=None):
    """A function of named random inputs: timed on the device, checked by `ref_fn` (default
    `fn`) in float64 on the CPU. With `rows`, the inputs named in `sliced` give only their first
    `rows` to the check (the outputs are independent along them), as src/bench/mod.rs does."""
    if not b.wanted(name):
        return None
    dev = {k: v.to(b.device) for k, v in inputs.items()}
    nbytes = 4 * sum(v.numel() for v in inputs.values())
    with torch.no_grad(), b.autocast():
        out = fn(**dev)
    outs = out if isinstance(out, (tuple, list)) else [out]
    nbytes += 4 * sum(o.numel() for o in outs)
    lead = next(iter(inputs.values())).shape[0]

    def check():
        ref_in = {k: (v[:rows] if rows and k in sliced else v).double() for k, v in inputs.items()}
        with torch.no_grad():
            want = (ref_fn or fn)(**ref_in)
        want = want if isinstance(want, (tuple, list)) else [want]
        err = max(rel_err(g.detach().cpu()[: w.shape[0]].reshape(w.shape), w.detach()) for g, w in zip(outs, want))
        what = f"first {rows} of {lead} rows" if rows else "every output"
        return err, f"{what} vs float64 on the CPU"

    def run():
        with torch.no_grad():
            fn(**dev)

    shapes = {k: v.shape for k, v in inputs.items()}
    return workload(b, suite, name, shapes, run, check, flops, nbytes, items=unit and lead, unit=unit)


def randn(*shape):
    return torch.randn(*shape)


def mask(*shape):
    return (torch.rand(*shape) < 0.3).float()


def lambdas(phi):
    s = torch.sigmoid(phi)
    return 2 * s, 2 - 2 * s


def dyn_conv(x, alpha, kernels, weight=None, m=None, phi=None):
    """DY-Conv (weight None) or PAD-Conv on given attention weights, one grouped convolution."""
    bsz, c = x.shape[:2]
    d = torch.einsum("bk,koihw->boihw", alpha, kernels)
    if weight is not None:
        ld, ls = lambdas(phi)
        d = ld * m * d + ls * (1 - m) * weight
    o = d.shape[1]
    y = F.conv2d(x.reshape(1, bsz * c, *x.shape[2:]), d.reshape(bsz * o, *d.shape[2:]), padding=1, groups=bsz)
    return y.reshape(bsz, o, *y.shape[2:])


def grads_of(fn, dy, inputs):
    """Gradients of fn(**inputs) · dy with respect to every input."""
    with torch.enable_grad():
        ins = {n: v.clone().requires_grad_() for n, v in inputs.items()}
        return torch.autograd.grad(fn(**ins), list(ins.values()), dy)


def kernel_cases(b):
    out = []
    g = lambda name, inputs, fn, **kw: out.append(graph_case(b, "kernels", name, inputs, fn, **kw))
    for s in [256, 512, 1024, 2048, 4096]:
        g(f"gemm {s}x{s}x{s}", {"a": randn(s, s), "b": randn(s, s)}, lambda a, b: a @ b, rows=16, sliced=["a"],
          flops=2.0 * s ** 3)
    for m, n, k, what in [(64, 32768, 576, "conv as GEMM"), (1024, 1536, 384, "BERT FFN in, 32x32 tokens"),
                          (1024, 384, 1536, "BERT FFN out"), (64, 10, 512, "classifier")]:
        g(f"gemm {m}x{n}x{k} ({what})", {"a": randn(m, k), "b": randn(k, n)}, lambda a, b: a @ b, rows=16, sliced=["a"],
          flops=2.0 * m * n * k)
    for label, (bs, c, h, w), o, k, groups in [("3x3 resnet stage 1", (32, 64, 32, 32), 64, 3, 1),
                                               ("3x3 resnet10 x0.25 stage 1", (64, 16, 28, 28), 16, 3, 1),
                                               ("3x3 resnet stage 4", (32, 512, 4, 4), 512, 3, 1),
                                               ("3x3 depthwise mobilenetv2", (32, 144, 16, 16), 144, 3, 144),
                                               ("1x1 mobilenetv2", (32, 24, 16, 16), 144, 1, 1)]:
        pad = k // 2
        macs = bs * o * h * w * (c // groups) * k * k
        shape = f"{c}->{o} {h}x{w} b{bs}"
        wshape = (o, c // groups, k, k)
        g(f"conv {label} {shape} forward", {"x": randn(bs, c, h, w), "w": randn(*wshape)},
          lambda x, w, p=pad, gr=groups: F.conv2d(x, w, padding=p, groups=gr), rows=2, sliced=["x"],
          flops=2.0 * macs)
        g(f"conv {label} {shape} grad-input", {"dy": randn(bs, o, h, w), "w": randn(*wshape)},
          lambda dy, w, p=pad, gr=groups, c=c, h=h, wd=w: torch.nn.grad.conv2d_input(
              (dy.shape[0], c, h, wd), w, dy, padding=p, groups=gr), rows=2, sliced=["dy"], flops=2.0 * macs)
        g(f"conv {label} {shape} grad-weight", {"x": randn(bs, c, h, w), "dy": randn(bs, o, h, w)},
          lambda x, dy, p=pad, gr=groups, ws=wshape: torch.nn.grad.conv2d_weight(x, ws, dy, padding=p, groups=gr),
          flops=2.0 * macs)
    bs, c, h, w, o, k = 32, 64, 16, 16, 64, 4
    macs = bs * o * h * w * c * 9
    for pad in [False, True]:
        kind = "pad-conv" if pad else "dy-conv"
        label = f"{kind} K={k} 3x3 {c}->{o} {h}x{w} b{bs}"
        inputs = {"x": randn(bs, c, h, w), "alpha": torch.softmax(randn(bs, k), 1), "kernels": randn(k, o, c, 3, 3)}
        if pad:
            inputs |= {"weight": randn(1, o, c, 3, 3), "m": mask(1, o, c, 3, 3), "phi": randn(1)}
        flops = 2.0 * macs + 2.0 * bs * k * o * c * 9
        g(f"{label} forward", inputs, dyn_conv, rows=2, sliced=["x", "alpha"], flops=flops)

        # The backward also yields ∂L/∂M, IMP's score, as ours does.
        g(f"{label} backward", inputs | {"dy": randn(bs, o, h, w)}, lambda dy, **ins: grads_of(dyn_conv, dy, ins),
          flops=2.0 * flops)
    e, rows, cols = 8, 1536, 384

    def mix(experts, weight, m, phi):
        ld, ls = lambdas(phi)
        return ld * m * experts + ls * (1 - m) * weight

    mix_in = {"experts": randn(e, rows, cols), "weight": randn(rows, cols), "m": mask(rows, cols), "phi": randn(1)}
    g(f"pad-mix E={e} {rows}x{cols} forward", mix_in, mix)

    g(f"pad-mix E={e} {rows}x{cols} backward", mix_in | {"dw": randn(e, rows, cols)},
      lambda dw, **ins: grads_of(mix, dw, ins))
    bsz, heads, length, dim = 32, 12, 32, 32
    g(f"attention b{bsz} h{heads} L{length} d{dim}",
      {"q": randn(bsz * heads, length, dim), "k": randn(bsz * heads, length, dim), "v": randn(bsz * heads, length, dim)},
      lambda q, k, v: torch.softmax(q @ k.transpose(1, 2), -1) @ v, rows=2, sliced=["q", "k", "v"],
      flops=4.0 * bsz * heads * length * length * dim)
    rows_, dim = 1024, 384
    ln_in = {"x": randn(rows_, dim), "gamma": randn(dim), "beta": randn(dim)}
    g(f"layernorm {rows_}x{dim} forward", ln_in, lambda x, gamma, beta: F.layer_norm(x, (dim,), gamma, beta, 1e-12),
      rows=8, sliced=["x"])

    g(f"layernorm {rows_}x{dim} backward", ln_in | {"dy": randn(rows_, dim)},
      lambda dy, **ins: grads_of(lambda x, gamma, beta: F.layer_norm(x, (dim,), gamma, beta, 1e-12), dy, ins))
    n, d, e, k = 1024, 384, 8, 2

    def route(logits, x):
        # Top-k experts per token, tokens grouped per expert, then summed back (unweighted).
        idx = logits.topk(k, 1).indices.reshape(-1)
        order = torch.argsort(idx, stable=True)
        token = order // k
        xs = x[token]
        return torch.zeros_like(x).index_add_(0, token, xs)

    g(f"moe route+dispatch+combine N={n} D={d} E={e} k={k}", {"logits": randn(n, e), "x": randn(n, d)}, route)
    return out


def layer_cases(b):
    """One layer's forward and backward (y and the gradients of x and every parameter)."""
    out = []
    bs, c, h, w, o = 32, 64, 16, 16, 64
    flops = 3.0 * 2.0 * bs * o * h * w * c * 9
    for mode in ["static", "dynamic", "pad"]:
        torch.manual_seed(1)
        layer = reference.block_conv(mode, c, o, 3, 1, 1)
        name = f"layer conv {mode} 3x3 {c}->{o} {h}x{w} b{bs} forward+backward"
        out.append(module_case(b, name, layer, randn(bs, c, h, w), flops, dynamic=mode != "static"))
    n, d_in, d_out = 256, 1536, 384
    flops = 3.0 * 2.0 * n * d_in * d_out
    for kind, module in [("dense", torch.nn.Linear(d_in, d_out)), ("moe E=8 k=2", Moe(d_in, d_out, False)),
                         ("pad-moe E=8 k=2", Moe(d_in, d_out, True))]:
        name = f"layer ffn {kind} {d_in}->{d_out} N={n} forward+backward"
        out.append(module_case(b, name, module, randn(n, d_in), flops))
    return out


class Moe(torch.nn.Module):
    """Top-2 of 8 experts on the clean router logits (evaluation routing, as ours in `layers`),
    gates renormalised over the chosen two; PAD-MoE mixes each expert with a static weight."""

    def __init__(self, d_in, d_out, pad, e=8, k=2):
        super().__init__()
        self.k, self.pad = k, pad
        self.w_gate = torch.nn.Parameter(torch.randn(d_in, e))
        self.weight_e = torch.nn.Parameter(torch.randn(e, d_out, d_in) / d_in ** 0.5)
        self.bias = torch.nn.Parameter(torch.randn(e, d_out))
        if pad:
            self.static = torch.nn.Parameter(torch.randn(d_out, d_in) / d_in ** 0.5)
            self.register_buffer("mask", mask(d_out, d_in))
            self.phi = torch.nn.Parameter(torch.randn(1))

    def forward(self, x):
        w = self.weight_e
        if self.pad:
            ld, ls = lambdas(self.phi)
            w = ld * self.mask * w + ls * (1 - self.mask) * self.static
        top = (x @ self.w_gate).topk(self.k, 1)
        gates = torch.softmax(top.values, 1)
        y = torch.zeros(x.shape[0], w.shape[1], dtype=x.dtype, device=x.device)
        for e in range(w.shape[0]):
            rows, slot = (top.indices == e).nonzero(as_tuple=True)
            if len(rows):
                ye = x[rows] @ w[e].T + self.bias[e]
                y = y.index_add(0, rows, ye * gates[rows, slot, None])
        return y


def module_case(b, name, module, x, flops, dynamic=False):
    """Forward and backward of `module` on `x` with a random output gradient."""
    if not b.wanted(name):
        return None
    call = (lambda m, x: m(x, 1.0)) if dynamic else (lambda m, x: m(x))
    with torch.no_grad():
        dy = torch.randn_like(call(module, x))
    dev = module.to(b.device)
    xd, dyd = x.to(b.device).requires_grad_(), dy.to(b.device)

    def step(m, x, dy):
        y = call(m, x)
        grads = torch.autograd.grad(y, [x] + list(m.parameters()), dy)
        return [y.detach()] + list(grads)

    got = step(dev, xd, dyd)

    def check():
        want = step(double_copy(module), x.double().requires_grad_(), dy.double())
        err = max(rel_err(g.detach().cpu(), w.detach()) for g, w in zip(got, want))
        return err, "output and every gradient vs float64 on the CPU"

    shapes = {"x": x.shape} | {n: p.shape for n, p in module.named_parameters()}
    return workload(b, "layers", name, shapes, lambda: step(dev, xd, dyd), check, flops)


def double_copy(module):
    return copy.deepcopy(module).cpu().double()


def resnet(mode, width=0.25, leading_filters=None, in_ch=1, blocks=1):
    """ResNet-10 (ResNet-18 with blocks=2) in `mode`; PAD masks random (30 % ones), or with
    `leading_filters` = f the first round(f · O) filters of every PAD layer dynamic
    (src/bench/kernels.rs)."""
    torch.manual_seed(1)
    net = reference.ResNet10(mode, width=width, in_ch=in_ch, classes=10, blocks=blocks)
    if mode == "pad":
        for m in net.modules():
            if isinstance(m, reference.PadConv2d):
                shape = m.kernels_weights_mask.shape
                if leading_filters is None:
                    m.kernels_weights_mask.copy_(mask(*shape))
                else:
                    m.kernels_weights_mask.zero_()
                    m.kernels_weights_mask[:, : round(leading_filters * shape[1])] = 1.0
    return net


def infer_cases(b, width=0.25, batch=500):
    out = []
    # The filter-structured deploy file computes the same function as a PAD layer with that
    # mask; PyTorch runs it as reference.py does (per-sample kernels of every filter).
    for kind in ["static", "dynamic", "pad", "pad-deploy", "pad-deploy filters 0.3"]:
        mode = "pad" if kind.startswith("pad") else kind
        net = resnet(mode, width, 0.3 if kind.endswith("0.3") else None).eval()
        if kind.startswith("pad-deploy"):
            # The deploy file's function: λ folded into the weights, evaluated as one.
            for m in net.modules():
                if isinstance(m, reference.PadConv2d):
                    m.lam = "none"
        dev = copy.deepcopy(net).to(b.device)
        name = f"infer resnet10 x{width} {kind} b{batch} 28x28"
        out.append(graph_case(b, "infer", name, {"images": randn(batch, 1, 28, 28)},
                              lambda images, d=dev: d(images, 1.0), rows=2, sliced=["images"],
                              ref_fn=lambda images, n=net: double_copy(n)(images, 1.0), unit="img/s"))
    return out + ffn_infer_cases(b)


class MoeRowSplit(torch.nn.Module):
    """A PAD-MoE deploy file whose first `rows` of the output rows are dynamic (λ folded, as
    `eval` runs it, src/nn/moe.rs `static_rows`): one GEMM of every token over
    the static rows plus the gate-weighted static biases, expert GEMMs over the dynamic rows."""

    def __init__(self, moe, rows):
        super().__init__()
        self.moe, self.dyn = moe, rows

    def forward(self, x):
        m, d = self.moe, self.dyn
        top = (x @ m.w_gate).topk(m.k, 1)
        gates = torch.softmax(top.values, 1)
        dense_gates = torch.zeros(x.shape[0], m.weight_e.shape[0], dtype=x.dtype, device=x.device)
        dense_gates = dense_gates.scatter(1, top.indices, gates)
        y_static = x @ m.static[d:].T + dense_gates @ m.bias[:, d:]
        y_dyn = torch.zeros(x.shape[0], d, dtype=x.dtype, device=x.device)
        for e in range(m.weight_e.shape[0]):
            tokens, slot = (top.indices == e).nonzero(as_tuple=True)
            if len(tokens):
                ye = x[tokens] @ m.weight_e[e, :d].T + m.bias[e, :d]
                y_dyn = y_dyn.index_add(0, tokens, ye * gates[tokens, slot, None])
        return torch.cat([y_dyn, y_static], 1)


def ffn_infer_cases(b, n=1024, d_in=1536, d_out=384, rows=0.5):
    """The `infer` suite's MiniLM FFN projection: dense, MoE, and a PAD-MoE deploy file with
    half of its rows dynamic, run split (src/bench/kernels.rs `ffn_infer`)."""
    out = []
    torch.manual_seed(1)
    split = MoeRowSplit(Moe(d_in, d_out, True), round(rows * d_out))
    for kind, module in [("dense", torch.nn.Linear(d_in, d_out)), ("moe E=8 k=2", Moe(d_in, d_out, False)),
                         (f"pad-moe-deploy rows {rows} E=8 k=2", split)]:
        dev = copy.deepcopy(module).to(b.device)
        name = f"infer ffn {kind} {d_in}->{d_out} N={n}"
        out.append(graph_case(b, "infer", name, {"x": randn(n, d_in)}, lambda x, d=dev: d(x), rows=16,
                              sliced=["x"], ref_fn=lambda x, m=module: double_copy(m)(x),
                              flops=2.0 * n * d_in * d_out, unit="tokens/s"))
    return out


def train_cases(b, width=0.25, batch=32):
    """The train suite's vision steps (src/bench/models.rs `train_suite`): ResNet-10 on
    Fashion-MNIST-sized images, and on a GPU ResNet-18 ×1 at batch 64 on 3×32×32."""
    vision = [("resnet10", width, batch, (1, 28, 28), 1)]
    if b.device.type != "cpu":
        vision.append(("resnet18", 1.0, 64, (3, 32, 32), 2))
    out = []
    for model, w, n, sample, blocks in vision:
        size = "x".join(map(str, sample[1:] if sample[0] == 1 else sample))
        for mode in ["static", "dynamic", "pad"]:
            name = f"train {model} x{w:g} {mode} b{n} {size}"
            if not b.wanted(name):
                continue
            out.append(train_case(b, name, resnet(mode, w, in_ch=sample[0], blocks=blocks), n, sample))
    return out


def train_case(b, name, net, batch, sample):
    """One training step (SGD with Nesterov momentum, as `train`) of `net` on a random batch."""
    net = net.to(b.device).train()
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, nesterov=True, weight_decay=5e-4)
    x = torch.randn(batch, *sample, device=b.device)
    y = torch.randint(0, 10, (batch,), device=b.device)
    losses = []

    def step():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(net(x, 1.0), y)
        loss.backward()
        opt.step()
        losses.append(loss.detach())

    def check():
        finite = all(torch.isfinite(l).item() for l in losses)
        return (0.0 if finite else math.inf), "training loss finite in every step"

    w = workload(b, "train", name, {"images": (batch, *sample)}, step, check, items=batch, unit="img/s")
    w["check"]["error"], w["check"]["tolerance"] = None, None
    return w


def system():
    cpu = None
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), None)
    except OSError:
        pass
    os_version = None
    try:
        with open("/etc/os-release") as f:
            kv = dict(l.rstrip().split("=", 1) for l in f if "=" in l)
            os_version = kv.get("PRETTY_NAME", "").strip('"') or None
    except OSError:
        pass
    return {"os": sys.platform, "os_version": os_version, "arch": platform.machine(), "cpu": cpu,
            "cpu_threads": os.cpu_count() or 1, "hostname": socket.gethostname()}


def adapter(device, sysinfo):
    if device.type == "cuda":
        p = torch.cuda.get_device_properties(device)
        rocm = getattr(torch.version, "hip", None)
        return {"name": p.name, "vendor_id": 0x1002 if rocm else 0x10DE, "device_id": 0,
                "device_type": "discrete-gpu", "backend": "rocm" if rocm else "cuda",
                "driver": f"{'HIP' if rocm else 'CUDA'} {rocm or torch.version.cuda}",
                "driver_info": f"cuDNN {torch.backends.cudnn.version()}"}
    return {"name": sysinfo["cpu"] or platform.processor() or "cpu", "vendor_id": 0, "device_id": 0,
            "device_type": "cpu" if device.type == "cpu" else "integrated-gpu", "backend": device.type,
            "driver": f"torch {torch.__version__}", "driver_info": f"{torch.get_num_threads()} threads"}


def git_revision():
    try:
        return subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True, text=True,
                              cwd=os.path.dirname(os.path.abspath(__file__)), check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--suite", default="all", choices=["kernels", "layers", "train", "infer", "all"])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--samples", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's)")
    ap.add_argument("--filter", default=None, help="only workloads whose name contains this")
    ap.add_argument("--json", required=True, help="record to write (refuses to replace one)")
    ap.add_argument("--precision", default="f32", choices=["f32", "f16"],
                    help="f16: matrix products and convolutions in float16 (autocast), checked to 1e-2")
    args = ap.parse_args()
    if os.path.exists(args.json):
        sys.exit(f"error: {args.json} exists; remove it first")
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.manual_seed(7)
    b = Bench(args.device, args.samples, args.filter, args.precision)
    sysinfo = system()
    record = {
        "schema": "padnet-bench/1",
        "created": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "tool": {"name": "pytorch", "version": torch.__version__, "git_revision": git_revision(),
                 "wgpu_version": "none (PyTorch)", "profile": "torch"},
        "adapter": adapter(b.device, sysinfo),
        "system": sysinfo,
        "limits": {},
        "features": [],
        "precision": args.precision,
        "peaks": None,
        "workloads": [],
    }
    print(f"adapter: {record['adapter']['name']} ({record['adapter']['backend']}), torch {torch.__version__}")
    suites = {"kernels": kernel_cases, "layers": layer_cases, "infer": infer_cases, "train": train_cases}
    for name, cases in suites.items():
        if args.suite in (name, "all"):
            record["workloads"] += [w for w in cases(b) if w is not None]
    if not record["workloads"]:
        sys.exit(f"error: no workload of suite {args.suite} matches --filter {args.filter!r}")
    tmp = args.json + ".part"
    with open(tmp, "w") as f:
        json.dump(record, f, indent=1)
    os.replace(tmp, args.json)
    failed = [w["name"] for w in record["workloads"] if not w["check"]["correct"]]
    print(f"record written to {args.json}")
    if failed:
        sys.exit(f"{len(failed)} workload(s) computed a wrong result: {', '.join(failed)}")


if __name__ == "__main__":
    main()
