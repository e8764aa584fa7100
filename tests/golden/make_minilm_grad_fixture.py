"""Writes tests/fixtures/minilm_grads_{moe,pad}.safetensors: the first fine-tuning step of the
pretrained all-MiniLM-L6-v2 (models/, fetched by scripts/fetch-minilm.sh) as `train --model
minilm-l6 --mode moe|pad` builds it — 8 experts upcycled from each FFN output projection, top-2
noisy gating with routers at zero, padding kept out of routing, a fresh classifier, cross-entropy
plus the balance penalties — on a batch of 32 real debian-sections sentences (32 tokens), in
PyTorch float64 (Hugging Face's BertModel with its `output.dense` layers replaced by the MoE of
make_moe_fixture.py), and PyTorch float32's own error on the same step (docs/numerics.md).

Dropout is off (its masks are exact scalings, not arithmetic). What padnet-wgpu draws from its
own random generator is drawn here from the hashed normal both sides share
(`reference::moe::random_normal`): the router noise (the step seed, salted by the layer name),
the classifier (std 0.02) and PAD-MoE's static weights (std 1/√d_in, the `independent` init's
scale) and masks (κ = 0.5: a hashed normal's sign). Such draws are rounded to float32 first.

MiniLM's gradients have 47.7M elements, so the fixture keeps 256 of each tensor's non-zero ones
(chosen at random; their flat indices, exact in f32, under `idx.NAME`), with float64's values and
PyTorch float32's largest relative L2 error over five batch orders on them. Run from the
repository root (needs torch, transformers, tokenizers and safetensors):
    python3 tests/golden/make_minilm_grad_fixture.py
"""
import json
import math

import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer
from transformers import BertConfig, BertModel

from make_moe_fixture import fnv1a, lambdas, moe, normal_noise

MODEL = "models/all-MiniLM-L6-v2"
BATCH, LEN, EXPERTS, TOP_K, SEED = 32, 32, 8, 2, 12345
SAMPLE, ORDERS = 256, 5
ZERO_GRAD = "attention.self.key.bias"
CLS_SALT, STATIC_SALT, MASK_SALT = fnv1a("classifier.weight"), fnv1a("static"), fnv1a("mask")


def hashed(n, salt, scale=1.0):
    """The shared hashed normal, rounded to float32 as padnet-wgpu stores it."""
    return (normal_noise(n, 0, salt) * scale).float().double()


def batch():
    """The first BATCH sentences of debian-sections' training split, tokenized like
    padnet-wgpu (truncated to LEN, padded to LEN), and their class indices (sorted names)."""
    rows = [line.rstrip("\n").split("\t") for line in open("data/debian-sections/train.tsv")][1:]
    names = sorted({r[1] for r in rows})
    tok = Tokenizer.from_file(f"{MODEL}/tokenizer.json")
    tok.enable_truncation(LEN)
    tok.enable_padding(length=LEN)
    enc = tok.encode_batch([r[0] for r in rows[:BATCH]])
    ids = torch.tensor([e.ids for e in enc])
    mask = torch.tensor([e.attention_mask for e in enc])
    labels = torch.tensor([names.index(r[1]) for r in rows[:BATCH]])
    return ids, mask, labels, len(names)


class MoeLinear(torch.nn.Module):
    """The FFN output projection as an MoE (or PAD-MoE) linear layer with padnet-wgpu's names."""

    def __init__(self, name, dense, pad):
        super().__init__()
        d_out, d_in = dense.weight.shape
        self.name, self.pad = name, pad
        self.w_gate = torch.nn.Parameter(torch.zeros(d_in, EXPERTS, dtype=torch.float64))
        self.w_noise = torch.nn.Parameter(torch.zeros(d_in, EXPERTS, dtype=torch.float64))
        self.experts_weight = torch.nn.Parameter(dense.weight.detach().repeat(EXPERTS, 1, 1).clone())
        self.experts_bias = torch.nn.Parameter(dense.bias.detach().repeat(EXPERTS, 1).clone())
        if pad:
            n = d_out * d_in
            self.weight = torch.nn.Parameter(hashed(n, STATIC_SALT ^ fnv1a(name), 1 / math.sqrt(d_in)).view(d_out, d_in))
            self.register_buffer("mask", (hashed(n, MASK_SALT ^ fnv1a(name)) > 0).double().view(d_out, d_in))
            self.phi_d = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
        self.aux = None

    def forward(self, x):
        b, l, d = x.shape
        flat = x.reshape(b * l, d)
        eps = normal_noise(b * l * EXPERTS, SEED, fnv1a(self.name + ".router_noise")).to(x.dtype)
        experts = self.experts_weight
        if self.pad:
            ld, ls = lambdas("both", self.phi_d)
            experts = ld * self.mask * experts + ls * (1 - self.mask) * self.weight
        y, self.aux = moe(flat, self.w_gate, self.w_noise, experts, self.experts_bias, TOP_K, eps,
                          True, TOKEN_MASK.to(x.dtype))
        return y.reshape(b, l, -1)


def build(pad, classes, dtype):
    cfg = BertConfig.from_pretrained(MODEL, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                                     attn_implementation="eager")
    bert = BertModel.from_pretrained(MODEL, config=cfg).double().eval()
    moes = []
    for i, layer in enumerate(bert.encoder.layer):
        m = MoeLinear(f"encoder.layer.{i}.output.dense", layer.output.dense, pad)
        layer.output.dense = m
        moes.append(m)
    head = torch.nn.Linear(cfg.hidden_size, classes).double()
    with torch.no_grad():
        head.weight.copy_(hashed(classes * cfg.hidden_size, CLS_SALT, 0.02).view(classes, -1))
        head.bias.zero_()
    model = torch.nn.ModuleDict({"bert": bert, "classifier": head}).to(dtype)
    return model, moes


def names(model):
    """padnet-wgpu's name of every parameter (and PAD mask) of the model."""
    out = {}
    for n, p in list(model.named_parameters()) + [(n, b) for n, b in model.named_buffers() if n.endswith(".mask")]:
        n = n.removeprefix("bert.").replace("experts_weight", "experts.weight").replace("experts_bias", "experts.bias")
        out[n] = p
    return out


def gradients(model, moes, ids, mask, labels):
    model.zero_grad()
    for m in moes:
        if m.pad:
            m.mask.grad = None
            m.mask.requires_grad_(True)
    out = model["bert"](input_ids=ids, attention_mask=mask)
    logits = model["classifier"](out.pooler_output)
    loss = torch.nn.functional.cross_entropy(logits, labels) + sum(m.aux for m in moes)
    loss.backward()
    return loss.item(), {n: t.grad.detach().clone() for n, t in names(model).items()}


def case(mode):
    global TOKEN_MASK
    ids, mask, labels, classes = batch()
    model, moes = build(mode == "pad", classes, torch.float64)
    model32, moes32 = build(mode == "pad", classes, torch.float32)
    TOKEN_MASK = mask.reshape(-1, 1)
    loss, g64 = gradients(model, moes, ids, mask, labels)
    # A key bias shifts every score of a query alike, which softmax ignores: its gradient is
    # zero, float64's is rounding noise (1e-17), so it has no relative error to compare. The
    # Rust test checks ours is negligible instead.
    g64 = {n: g for n, g in g64.items() if not n.endswith(ZERO_GRAD)}
    gen = torch.Generator().manual_seed(0)
    tensors = {"input_ids": ids.float(), "attention_mask": mask.float(), "labels": labels.float()}
    picks = {}
    for n, g in g64.items():
        nz = g.flatten().nonzero().flatten()
        pick = nz[torch.randperm(len(nz), generator=gen)[:SAMPLE]].sort().values
        picks[n] = pick
        assert len(g.flatten()) < 2 ** 24  # indices exact in f32
        tensors[f"idx.{n}"] = pick.float()
        tensors[f"grad.{n}"] = g.flatten()[pick].float()
    worst = dict.fromkeys(g64, 0.0)
    for r in range(ORDERS):
        perm = torch.arange(BATCH) if r == 0 else torch.randperm(BATCH, generator=gen)
        TOKEN_MASK = mask[perm].reshape(-1, 1)
        # The router noise follows the token's row of the batch, so a permuted batch sees other
        # noise: the f64 reference of each order is computed on the same permuted batch.
        _, g32 = gradients(model32, moes32, ids[perm], mask[perm], labels[perm])
        _, ref = gradients(model, moes, ids[perm], mask[perm], labels[perm])
        for n in g64:
            a, b = g32[n].double().flatten(), ref[n].flatten()
            worst[n] = max(worst[n], ((a - b).norm() / b.norm().clamp_min(1e-300)).item())
    top = sorted(worst.items(), key=lambda kv: -kv[1])[:3]
    print(f"{mode}: loss {loss:.6f}; largest PyTorch f32 errors", ", ".join(f"{n} {e:.1e}" for n, e in top))
    meta = {"mode": mode, "classes": str(classes), "experts": str(EXPERTS), "top_k": str(TOP_K),
            "seed": str(SEED), "loss": str(loss), "f32_error": json.dumps(worst),
            "f32_orders": str(ORDERS), "salts": json.dumps({"classifier": CLS_SALT, "static": STATIC_SALT, "mask": MASK_SALT})}
    save_file({k: v.contiguous() for k, v in tensors.items()}, f"tests/fixtures/minilm_grads_{mode}.safetensors", metadata=meta)


if __name__ == "__main__":
    for mode in ("moe", "pad"):
        case(mode)
