"""Writes tests/fixtures/moe_*.safetensors: a float64 PyTorch MoE linear layer written from
docs/method.md §1.3 (noisy top-k gating, restricted softmax, Φ load estimate, cv² with the
unbiased variance, aux weight 0.01), and its PAD-MoE form (§1.4: experts share a static weight
and a mask, W~_e = λ_d M⊙W_e + λ_s (1−M)⊙W_s, the mask's gradient ∂L/∂M included), on inputs x, with the router noise ε computed by the same
hashes as padnet-wgpu (PCG hash + Box–Muller, salted by FNV-1a of the layer name), so both
sides see identical noise. Stores x, r, every parameter, y, aux and every gradient of
L = sum(y * r) + aux. Run from the repository root:
    python3 tests/golden/make_moe_fixture.py
"""
import json
import math
import torch
from safetensors.torch import save_file

M32 = 0xFFFFFFFF


def pcg(v):
    s = (v * 747796405 + 2891336453) & M32
    w = (((s >> ((s >> 28) + 4)) ^ s) * 277803737) & M32
    return ((w >> 22) ^ w) & M32


def fnv1a(s):
    h = 0x811C9DC5
    for c in s.encode():
        h = ((h ^ c) * 0x01000193) & M32
    return h


def normal_noise(n, seed, salt):
    key = pcg(seed ^ pcg(salt))
    out = []
    for i in range(n):
        u1 = ((pcg(((2 * i) & M32) ^ key) >> 8) + 0.5) / 16777216.0
        u2 = (pcg(((2 * i + 1) & M32) ^ key) >> 8) / 16777216.0
        out.append(math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2))
    return torch.tensor(out, dtype=torch.float64)


def cv_squared(v):
    if v.numel() == 1:
        return v.sum() * 0
    return v.var(unbiased=True) / (v.mean() ** 2 + 1e-10)


def lambdas(variant, phi):
    """(λ_d, λ_s) of a PAD λ variant at φ (docs/method.md §1.2/§1.4)."""
    s = torch.sigmoid(phi)
    one = torch.ones_like(phi)
    return {
        "both": (2 * s, 2 - 2 * s),
        "s": (one, 2 - 2 * s),
        "d": (2 * s, one),
        "none": (one, one),
        "p": (one, 0 * one),
    }[variant]


def moe(x, w_gate, w_noise, weight, bias, k, eps, train, mask):
    clean = x @ w_gate
    n, e = clean.shape
    if train:
        sigma = torch.nn.functional.softplus(x @ w_noise) + 0.01
        logits = clean + eps.view(n, e) * sigma
    else:
        logits = clean
    # Top-k with ties to the lower index (stable sort).
    order = torch.sort(logits.detach(), dim=1, descending=True, stable=True).indices
    top = order[:, :k]
    sel = torch.zeros_like(logits, dtype=torch.bool).scatter_(1, top, True)
    masked = logits.masked_fill(~sel, float("-inf"))
    gates = torch.softmax(masked, dim=1) * mask
    # Expert by expert: one einsum over (token, expert, out, in) can build an n·e·o·i temporary.
    out = sum(gates[:, j:j + 1] * (x @ weight[j].T) for j in range(e)) + gates @ bias
    importance = gates.sum(0)
    aux = cv_squared(importance)
    if train:
        kth = logits.gather(1, order[:, k - 1:k])
        nxt = logits.gather(1, order[:, k:k + 1])
        theta = torch.where(logits > nxt, nxt, kth)
        normal = torch.distributions.Normal(0.0, 1.0)
        p = normal.cdf((clean - theta) / sigma) * mask
        aux = aux + cv_squared(p.sum(0))
    return out, 0.01 * aux


def case(name, n, d_in, d_out, e, k, train, seed, pad_rows=0, pad=None):
    torch.manual_seed(seed + 1)
    x = torch.randn(n, d_in, dtype=torch.float64, requires_grad=True)
    params = {
        "w_gate": 0.3 * torch.randn(d_in, e, dtype=torch.float64),
        "w_noise": 0.3 * torch.randn(d_in, e, dtype=torch.float64),
        "experts.weight": torch.randn(e, d_out, d_in, dtype=torch.float64) / math.sqrt(d_in),
        "experts.bias": 0.1 * torch.randn(e, d_out, dtype=torch.float64),
    }
    if pad:
        params["weight"] = torch.randn(d_out, d_in, dtype=torch.float64) / math.sqrt(d_in)
        params["phi_d"] = torch.tensor([0.4], dtype=torch.float64)
        params["mask"] = (torch.rand(d_out, d_in, dtype=torch.float64) < 0.5).double()
    for p in params.values():
        p.requires_grad_(True)
    mask = torch.ones(n, 1, dtype=torch.float64)
    if pad_rows:
        mask[-pad_rows:] = 0
    eps = normal_noise(n * e, seed, fnv1a("moe.router_noise"))
    experts = params["experts.weight"]
    if pad:
        ld, ls = lambdas(pad, params["phi_d"])
        m = params["mask"]
        experts = ld * m * experts + ls * (1 - m) * params["weight"]
    y, aux = moe(x, params["w_gate"], params["w_noise"], experts,
                 params["experts.bias"], k, eps, train, mask)
    r = torch.randn_like(y)
    ((y * r).sum() + aux).backward()
    t = {"x": x, "r": r, "y": y, "aux": aux.reshape(1), "token_mask": mask, "grad.x": x.grad}
    for key, p in params.items():
        t[key] = p
        t["grad." + key] = p.grad if p.grad is not None else torch.zeros_like(p)  # w_noise in eval
    t = {key: v.detach().float().contiguous() for key, v in t.items()}
    meta = {"experts": e, "top_k": k, "train": int(train), "seed": seed, "pad": pad or ""}
    save_file(t, f"tests/fixtures/moe_{name}.safetensors", metadata={a: str(b) for a, b in meta.items()})


if __name__ == "__main__":
    case("train", n=13, d_in=6, d_out=5, e=4, k=2, train=True, seed=77, pad_rows=3)
    case("eval", n=11, d_in=6, d_out=5, e=4, k=2, train=False, seed=3)
    case("train_k1", n=9, d_in=5, d_out=4, e=3, k=1, train=True, seed=5)
    case("pad_train", n=13, d_in=6, d_out=5, e=4, k=2, train=True, seed=21, pad_rows=2, pad="both")
    case("pad_eval_s", n=10, d_in=6, d_out=5, e=4, k=2, train=False, seed=8, pad="s")
    case("pad_train_p", n=9, d_in=5, d_out=4, e=3, k=1, train=True, seed=6, pad="p")
