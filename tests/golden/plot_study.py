#!/usr/bin/env python3
"""The study's plots (docs/results/README.md): test accuracy against the dynamic fraction κ
and against the deployed parameters, mean ± std over seeds, static and DY-Conv as references.
Needs matplotlib; never run by CI.

    python3 tests/golden/plot_study.py --runs docs/results/twin --prefix twin-b2 \\
        --params docs/results/resnet10-fmnist.json --out docs/results/study.png \\
        --budget 5000=twin-b2-static-s?,twin-b2-dynamic-te10-s?,twin-b2-pad-te10-s? \\
        --budget 10000=twin-b1-static-s?,twin-e2-dynamic-te20-s?,twin-e2-pad-te20-s? \\
        --budget 50000=twin-p5k-e10-static-s?,twin-p5k-e10-dynamic-s?,twin-p5k-e10-pad-s? \\
        --budget 100000=twin-p5k-e20-static-s?,twin-p5k-e20-dynamic-s?,twin-p5k-e20-pad-s? \\
        --budget 60000=twin-full-static-s?,twin-full-dynamic-s?,twin-full-pad-s?

Runs are read from RUNS/PREFIX-static-s*, PREFIX-dynamic-s*, PREFIX-pad-s* (κ = 0.3) and
PREFIX-k{κ}-s* (the final test_acc of each metrics.jsonl). Deployed parameters follow the
accounting of docs/method.md §4, other + N (1 + (K − 1) κ) with K = 4, where N (positions of
the PAD layers) and other are solved from the κ = 0.3 and 0.5 rows of an `experiment` JSON of
the same model.
"""
import argparse
import glob
import json
import os
import statistics

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

K = 4


def final_acc(run):
    """Final test accuracy (%) of a finished run, None while it still runs."""
    try:
        with open(os.path.join(run, "metrics.jsonl")) as f:
            lines = f.read().strip().splitlines()
        with open(os.path.join(run, "config.json")) as f:
            epochs = json.load(f)["epochs"]
    except (OSError, KeyError, ValueError):
        return None
    last = json.loads(lines[-1]) if lines else {}
    return 100.0 * last["test_acc"] if last.get("epoch") == epochs else None


def train_images(pattern):
    """The training-set size of the runs matching `pattern` (60 000: the whole set)."""
    for run in sorted(glob.glob(pattern)):
        try:
            with open(os.path.join(run, "config.json")) as f:
                return json.load(f).get("limit_train") or 60000
        except (OSError, ValueError):
            continue
    return None


def group(pattern):
    accs = [a for a in (final_acc(r) for r in sorted(glob.glob(pattern))) if a is not None]
    if not accs:
        return None
    return statistics.mean(accs), (statistics.stdev(accs) if len(accs) > 1 else 0.0), len(accs)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", required=True)
    ap.add_argument("--prefix", required=True)
    ap.add_argument("--params", required=True, help="experiment JSON with PAD κ=0.3 and 0.5 rows")
    ap.add_argument("--budget", action="append", default=[], metavar="IMAGES=STATIC,DYNAMIC,PAD",
                    help="a third panel: the runs matching the globs STATIC, DYNAMIC and PAD (κ=0.3; under "
                         "--runs) against the training images they saw (repeat per budget)")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    rows = {r["label"]: r for r in json.load(open(args.params))}
    d3, d5 = rows["PAD κ=0.3"]["deploy_params"], rows["PAD κ=0.5"]["deploy_params"]
    n = (d5 - d3) / ((K - 1) * 0.2)
    other = d3 - n * (1 + (K - 1) * 0.3)
    deployed = lambda kappa: (other + n * (1 + (K - 1) * kappa)) / 1e6

    base = os.path.join(args.runs, args.prefix)
    sweep = []
    for kappa in [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9]:
        pattern = f"{base}-pad-s[0-9]" if kappa == 0.3 else f"{base}-k{kappa}-s[0-9]"
        g = group(pattern)
        if g:
            sweep.append((kappa, *g))
    static, dy = group(f"{base}-static-s[0-9]"), group(f"{base}-dynamic-s[0-9]")

    budgets = [(int(i), globs.split(",")) for i, globs in (b.split("=") for b in args.budget)]
    fig, axes = plt.subplots(1, 3 if budgets else 2, figsize=(18 if budgets else 12, 4.5))
    a, b = axes[0], axes[1]
    if budgets:
        c = axes[2]
        # One line per mode and training-set size: epochs over 5 000 images, or the whole set.
        for m, (name, marker, color) in enumerate([("static", "s", "C0"), ("DY-Conv", "^", "C1"),
                                                   ("PAD κ=0.3", "o", "C2")]):
            by_set = {}
            for images, globs in budgets:
                pattern = os.path.join(args.runs, globs[m])
                g = group(pattern)
                if g:
                    by_set.setdefault(train_images(pattern), []).append((images, g))
            for size, pts in sorted(by_set.items()):
                pts.sort()
                c.errorbar([x for x, _ in pts], [g[0] for _, g in pts], yerr=[g[1] for _, g in pts],
                           fmt=marker + ("-" if size < 60000 else ""), color=color, capsize=3,
                           mfc=color if size < 60000 else "none", label=f"{name}, {size} training images")
                for x, g in pts:
                    print(f"budget {x} images seen ({size}-image set), {name}: {g[0]:.2f} ± {g[1]:.2f} % "
                          f"({g[2]} seeds)")
        c.set_xscale("log")
        c.set_xlabel("training images seen (epochs × images)")
        c.set_ylabel("test accuracy (%)")
        c.grid(alpha=0.3)
        c.legend(fontsize=7)
    for ax, x_of, label in [(a, lambda k: k, "dynamic fraction κ"), (b, deployed, "deployed parameters (M)")]:
        xs = [x_of(k) for k, *_ in sweep]
        ax.errorbar(xs, [m for _, m, _, _ in sweep], yerr=[s for _, _, s, _ in sweep], fmt="o-", capsize=3,
                    label="PAD (IMP, SNIP)")
        for (name, g, x, style) in [("static", static, x_of(0.0) if ax is a else (other + n) / 1e6, "s"),
                                    ("DY-Conv", dy, x_of(1.0), "^")]:
            if g:
                ax.errorbar([x], [g[0]], yerr=[g[1]], fmt=style, capsize=3, label=f"{name}")
        ax.set_xlabel(label)
        ax.set_ylabel("test accuracy (%)")
        ax.grid(alpha=0.3)
    seeds = sorted({c for *_, c in sweep})
    fig.suptitle(f"{args.prefix}: ResNet-10 ×0.25, mean ± std over {'/'.join(map(str, seeds))} seed(s) per point")
    a.legend()
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    for k, m, s, c in sweep:
        print(f"κ = {k}: {m:.2f} ± {s:.2f} % ({c} seeds), deployed {deployed(k):.3f} M")
    for name, g in [("static", static), ("DY-Conv", dy)]:
        if g:
            print(f"{name}: {g[0]:.2f} ± {g[1]:.2f} % ({g[2]} seeds)")


if __name__ == "__main__":
    main()
