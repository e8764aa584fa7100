"""The PyTorch twin of `padnet-wgpu train` for images (docs/results/README.md, "The PyTorch twin").

It trains the modules of reference.py (ResNet-10/18 with the cifar stem, MobileNetV2; static /
DY-Conv / PAD-Conv)
with padnet-wgpu's image recipe, step for step:

- data: Fashion-MNIST from the Debian package (or --data-dir), the first --limit-train
  training images, normalised as src/data does; every epoch's order is the Fisher-Yates
  shuffle of src/rng.rs (xoshiro256** seeded by splitmix64) with seed
  `seed * 1000003 + epoch` (epochs from 1), the last partial batch dropped; no augmentation;
- init: reference.py's (He fan-out normal; BatchNorm γ = 1, β = 0), seeded by torch;
- IMP (pad mode): SNIP, global, exact κ, once before training (or before step --imp-after),
  in evaluation mode, at T = temp_init + 1 (or that step's), on the first --imp-batches
  batches of the order shuffled with `seed`;
  scores |Σ_b ∂L_b/∂M|, the floor((1 − κ) N) lowest (ties included) become static;
- temperature: before step i, T = 1 + (T0 − 1) max(0, (N_T − i) / N_T), N_T = round(
  temp_epochs · steps per epoch), temp_epochs by default 10 % of the run but at least 100
  steps, and 10 times the run (a soft attention) in runs under 200 steps (docs/method.md §3);
- SGD, Nesterov momentum 0.9, weight decay 5e-4 on every parameter, a linear warm-up over
  --warmup-epochs (default none), then a cosine learning rate per step from --lr to 0; label-smoothed cross-entropy with ε/(C − 1) off the label;
- evaluation after every epoch on the whole test split with BatchNorm's running statistics, at
  the temperature of the last step.

It writes DIR/metrics.jsonl with the fields of padnet-wgpu's (epoch, train_loss, train_acc,
test_loss, test_acc, lr, train_img_per_s, epoch_seconds) and DIR/config.json. Options that
padnet-wgpu lacks (--attention-lr, --attention-wd, --bn-recalibrate) are for exploring the
recipe; their defaults are padnet-wgpu's behaviour.

Needs torch (CPU is enough); never run by CI. Example, from the repository root:
    python3 tests/golden/twin_train.py --model resnet10 --width 0.25 --mode pad --kappa 0.3 \\
        --limit-train 5000 --epochs 2 --seed 0 --out runs/twin-r10-pad
"""
import argparse
import gzip
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference  # noqa: E402
from reference import MobileNetV2, PadConv2d, ResNet10  # noqa: E402

MASK64 = (1 << 64) - 1
MEAN, STD = 0.2860, 0.3530  # src/data: Fashion-MNIST normalisation
DEPTH_BLOCKS = {"resnet10": 1, "resnet18": 2}
MODELS = sorted(DEPTH_BLOCKS) + ["mobilenetv2"]


def rotl(x, k):
    return ((x << k) | (x >> (64 - k))) & MASK64


class Rng:
    """src/rng.rs: xoshiro256** seeded by splitmix64."""

    def __init__(self, seed):
        z, self.s = seed & MASK64, []
        for _ in range(4):
            z = (z + 0x9E3779B97F4A7C15) & MASK64
            x = z
            x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
            x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & MASK64
            self.s.append(x ^ (x >> 31))

    def next_u64(self):
        s = self.s
        r = (rotl((s[1] * 5) & MASK64, 7) * 9) & MASK64
        t = (s[1] << 17) & MASK64
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = rotl(s[3], 45)
        return r

    def below(self, n):
        return ((self.next_u64() >> 32) * n) >> 32

    def shuffle(self, v):
        for i in range(len(v) - 1, 0, -1):
            j = self.below(i + 1)
            v[i], v[j] = v[j], v[i]


def shuffled(n, seed):
    order = list(range(n))
    Rng(seed).shuffle(order)
    return order


def load_split(data_dir, prefix, limit):
    with gzip.open(os.path.join(data_dir, f"{prefix}-images-idx3-ubyte.gz")) as f:
        x = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 1, 28, 28)
    with gzip.open(os.path.join(data_dir, f"{prefix}-labels-idx1-ubyte.gz")) as f:
        y = np.frombuffer(f.read(), np.uint8, offset=8)
    if limit:
        x, y = x[:limit], y[:limit]
    x = (torch.tensor(x, dtype=torch.float32) / 255.0 - MEAN) / STD
    return x, torch.tensor(y, dtype=torch.int64)


def smoothed_ce(logits, labels, eps):
    """Mean over the batch of −Σ q log softmax, q = 1 − ε on the label, ε/(C − 1) elsewhere."""
    c = logits.shape[1]
    q = torch.full_like(logits, eps / (c - 1))
    q.scatter_(1, labels[:, None], 1.0 - eps)
    return -(q * F.log_softmax(logits, 1)).sum(1).mean()


def default_anneal_epochs(epochs, steps_per_epoch):
    """src/train/config.rs default_anneal_epochs: 10 % of the run, at least 100 steps; a run
    under 200 steps anneals over 10 times its length (a soft attention)."""
    run = epochs * steps_per_epoch
    steps = 10.0 * run if run < 200 else max(0.1 * run, 100.0)
    return steps / max(steps_per_epoch, 1)


def temperature(t0, anneal_steps, step):
    if anneal_steps == 0:
        return 1.0
    return 1.0 + max(0.0, t0 - 1.0) * max(0, anneal_steps - step) / anneal_steps


def cosine_lr(base, step, total, warmup=0):
    """padnet-wgpu's Schedule: linear warm-up to `base` over `warmup` steps, then cosine to 0."""
    if step < warmup:
        return base * (step + 1) / warmup
    return base * 0.5 * (1.0 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))


def pad_layers(net):
    return [(n, m) for n, m in net.named_modules() if isinstance(m, PadConv2d) and m.pad]


def imp(net, x, y, args, t0):
    """SNIP, global, exact κ: masks from |Σ_b ∂L_b/∂M| at T = t0 in evaluation mode."""
    layers = pad_layers(net)
    masks = [m.kernels_weights_mask.requires_grad_(True) for _, m in layers]
    net.eval()
    order = shuffled(len(y), args.seed)
    grads = [torch.zeros_like(m) for m in masks]
    for b in range(min(args.imp_batches, len(y) // args.batch_size)):
        idx = order[b * args.batch_size:(b + 1) * args.batch_size]
        loss = smoothed_ce(net(x[idx], t0), y[idx], args.label_smoothing)
        for g, d in zip(grads, torch.autograd.grad(loss, masks)):
            g += d
    scores = torch.cat([g.abs().flatten() for g in grads])
    k = math.floor((1.0 - args.kappa) * scores.numel())
    with torch.no_grad():
        for m in masks:
            m.requires_grad_(False)
        if args.mask_granularity != "element":
            group_masks(masks, grads, args.kappa, args.mask_granularity)
        elif k >= 1:
            theta = scores.sort().values[k - 1]
            for m, g in zip(masks, grads):
                m.copy_((g.abs() > theta).float())
    kept = sum(m.sum().item() for m in masks) / scores.numel()
    net.train()
    return kept


# Dimensions of a mask [1, O, C, kh, kw] averaged over to score each group (src/imp/mod.rs).
GROUP_MEAN_DIMS = {"kernel": (3, 4), "filter": (2, 3, 4), "channel": (1, 3, 4)}


def group_masks(masks, grads, kappa, granularity):
    """Structured IMP (docs/method.md §2): groups scored by their mean |Σ ∂L/∂M|, exactly
    round(κ·G) of all G groups kept dynamic, ties towards earlier layers and groups."""
    dims = GROUP_MEAN_DIMS[granularity]
    means = [g.abs().mean(dims, keepdim=True) for g in grads]
    flat = torch.cat([m.flatten() for m in means]).double()
    keep = round(kappa * flat.numel())
    order = sorted(range(flat.numel()), key=lambda i: (-flat[i].item(), i))
    chosen = torch.zeros(flat.numel())
    chosen[order[:keep]] = 1.0
    start = 0
    for m, mean in zip(masks, means):
        n = mean.numel()
        m.copy_(chosen[start:start + n].reshape(mean.shape).expand_as(m))
        start += n


@torch.no_grad()
def evaluate(net, x, y, t, batch=500):
    net.eval()
    loss, correct = 0.0, 0
    for i in range(0, len(y), batch):
        logits = net(x[i:i + batch], t).double()
        loss += F.cross_entropy(logits, y[i:i + batch], reduction="sum").item()
        correct += (logits.argmax(1) == y[i:i + batch]).sum().item()
    net.train()
    return loss / len(y), correct / len(y)


@torch.no_grad()
def recalibrate_bn(net, x, y, t, args, batches):
    """Re-estimates BatchNorm's running statistics at temperature t (cumulative average)."""
    for m in net.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.reset_running_stats()
            m.momentum = None
    order = shuffled(len(y), args.seed + 17)
    for b in range(min(batches, len(y) // args.batch_size)):
        net(x[order[b * args.batch_size:(b + 1) * args.batch_size]], t)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="resnet10", choices=MODELS)
    ap.add_argument("--stem", default="cifar", choices=["cifar", "imagenet"], help="MobileNetV2 only (ResNets: cifar)")
    ap.add_argument("--width", type=float, default=0.25)
    ap.add_argument("--mode", default="static", choices=["static", "dynamic", "pad"])
    ap.add_argument("--kappa", type=float, default=0.5)
    ap.add_argument("--imp-batches", type=int, default=10)
    ap.add_argument("--mask-granularity", default="element", choices=["element", "kernel", "filter", "channel"])
    ap.add_argument("--imp-after", type=int, default=0, help="run IMP before this training step (0: before training)")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=0.05)
    ap.add_argument("--head-std", type=float, default=None, help="std of the classifier's initial weights (default: He fan-out, sqrt(2 / classes))")
    ap.add_argument("--warmup-epochs", type=float, default=0.0, help="linear learning-rate warm-up, in epochs")
    ap.add_argument("--weight-decay", type=float, default=5e-4)
    ap.add_argument("--label-smoothing", type=float, default=0.0)
    ap.add_argument("--temp-init", type=float, default=30.0)
    ap.add_argument("--temp-epochs", type=float, default=None, help="default: the first 10 %% of the run, at least 100 steps; 10 times the run under 200 steps")
    ap.add_argument("--attention-lr", type=float, default=1.0, help="learning-rate multiplier of the attention branch")
    ap.add_argument("--attention-wd", type=float, default=None, help="weight decay of the attention branch")
    ap.add_argument("--bn-recalibrate", type=int, default=0, help="batches to re-estimate BN statistics after training")
    ap.add_argument("--limit-train", type=int, default=None)
    ap.add_argument("--limit-test", type=int, default=None)
    ap.add_argument("--data-dir", default=os.environ.get("PADNET_DATA_DIR", "/usr/share/datasets/fashion-mnist"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    os.makedirs(args.out, exist_ok=False)
    x, y = load_split(args.data_dir, "train", args.limit_train)
    xt, yt = load_split(args.data_dir, "t10k", args.limit_test)
    steps_per_epoch = len(y) // args.batch_size
    if args.temp_epochs is None:
        args.temp_epochs = default_anneal_epochs(args.epochs, steps_per_epoch)
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(vars(args) | {"tool": "twin_train.py", "torch": torch.__version__}, f, indent=1)

    if args.model == "mobilenetv2":
        net = MobileNetV2(args.mode, width=args.width, classes=10, stem=args.stem)
    else:
        net = ResNet10(args.mode, width=args.width, classes=10, blocks=DEPTH_BLOCKS[args.model])
    if args.head_std is not None:
        torch.nn.init.normal_(net.linear.weight, 0, args.head_std)
    total = steps_per_epoch * args.epochs
    anneal = round(args.temp_epochs * steps_per_epoch)
    warmup = round(args.warmup_epochs * steps_per_epoch)
    t0 = args.temp_init + 1.0
    partition = args.mode == "pad" and args.kappa < 1.0

    def run_imp(t):
        kept = imp(net, x, y, args, t)
        print(f"IMP at step {step}, T = {t:.2f}: κ = {args.kappa}, kept {kept:.4f} dynamic", flush=True)

    step = 0
    if partition and args.imp_after == 0:
        run_imp(t0)

    attention = [p for n, p in net.named_parameters() if ".attention." in n]
    ids = {id(p) for p in attention}
    rest = [p for p in net.parameters() if id(p) not in ids]
    wd = args.weight_decay
    groups = [{"params": rest, "lr_mult": 1.0, "weight_decay": wd}]
    if attention:
        awd = wd if args.attention_wd is None else args.attention_wd
        groups.append({"params": attention, "lr_mult": args.attention_lr, "weight_decay": awd})
    opt = torch.optim.SGD(groups, lr=args.lr, momentum=0.9, nesterov=True)

    t = t0
    metrics = open(os.path.join(args.out, "metrics.jsonl"), "w")
    for epoch in range(1, args.epochs + 1):
        started = time.time()
        order = shuffled(len(y), (args.seed * 1000003 + epoch) & MASK64)
        loss_sum, correct, seen = 0.0, 0, 0
        for b in range(steps_per_epoch):
            lr = cosine_lr(args.lr, step, total, warmup)
            for g in opt.param_groups:
                g["lr"] = lr * g["lr_mult"]
            t = temperature(args.temp_init, anneal, step)
            if partition and args.imp_after and step == args.imp_after:
                run_imp(t)
            idx = order[b * args.batch_size:(b + 1) * args.batch_size]
            logits = net(x[idx], t)
            loss = smoothed_ce(logits, y[idx], args.label_smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            loss_sum += loss.item() * len(idx)
            correct += (logits.argmax(1) == y[idx]).sum().item()
            seen += len(idx)
        train_seconds = time.time() - started
        if epoch == args.epochs and args.bn_recalibrate:
            recalibrate_bn(net, x, y, t, args, args.bn_recalibrate)
        test_loss, test_acc = evaluate(net, xt, yt, t)
        m = {
            "epoch": epoch,
            "train_loss": loss_sum / seen,
            "train_acc": correct / seen,
            "test_loss": test_loss,
            "test_acc": test_acc,
            "lr": lr,
            "train_img_per_s": seen / train_seconds,
            "epoch_seconds": time.time() - started,
            "temperature": t,
        }
        metrics.write(json.dumps(m) + "\n")
        metrics.flush()
        print(f"epoch {epoch}/{args.epochs}: train loss {m['train_loss']:.4f} acc {100 * m['train_acc']:.2f}% | "
              f"test loss {test_loss:.4f} acc {100 * test_acc:.2f}% | T {t:.2f} | {m['train_img_per_s']:.0f} img/s",
              flush=True)


if __name__ == "__main__":
    main()
