"""Mean ± std and 95 % confidence interval of the final test accuracy of groups of runs, and
Welch's t-test (with the difference's 95 % interval) between pairs of
groups: how the parity of padnet-wgpu and its PyTorch twin (twin_train.py) is judged
(docs/results/README.md). A group is LABEL=GLOB (run directories with a metrics.jsonl, written
by either tool) or LABEL=A,B,C (accuracies in %, for results recorded elsewhere).

    python3 tests/golden/summarize_runs.py "twin static=runs/study/twin-b1-static-s*" \\
        "ours static=84.20,83.36,84.80" --pair "ours static" "twin static"

Needs scipy for the p-value (prints the t statistic and Welch's degrees of freedom without it).
"""
import argparse
import glob
import json
import math
import os
import statistics


def final_accuracy(run):
    """Final test accuracy (%) of a finished run (dev accuracy for text runs); None while it
    still runs (its last epoch is short of config.json's `epochs`, both tools write it) or
    before its first epoch."""
    with open(os.path.join(run, "metrics.jsonl")) as f:
        lines = [json.loads(line) for line in f if line.strip()]
    try:
        with open(os.path.join(run, "config.json")) as f:
            epochs = json.load(f).get("epochs")
    except (OSError, ValueError):
        epochs = None
    if not lines or (epochs is not None and lines[-1].get("epoch") != epochs):
        return None
    last = lines[-1]
    return 100.0 * last.get("test_acc", last.get("dev_acc"))


def group(spec):
    label, _, source = spec.rpartition("=")
    if any(c in source for c in "*/?"):
        runs = sorted(glob.glob(source))
        accs = [final_accuracy(r) for r in runs if os.path.exists(os.path.join(r, "metrics.jsonl"))]
        return label, [a for a in accs if a is not None]
    return label, [float(v) for v in source.split(",")]


def student_quantile(df):
    """The 97.5 % quantile of Student's t with df degrees of freedom (nan without scipy)."""
    try:
        from scipy.stats import t as student

        return student.ppf(0.975, df)
    except ImportError:
        return float("nan")


def mean_ci(accs):
    """Half-width of the 95 % confidence interval of the mean (Student's t, n − 1 df)."""
    n = len(accs)
    return student_quantile(n - 1) * statistics.stdev(accs) / math.sqrt(n)


def welch(a, b):
    """Welch's t, its degrees of freedom, the two-sided p and the 95 % CI half-width of the
    difference of the means."""
    va, vb = statistics.variance(a) / len(a), statistics.variance(b) / len(b)
    t = (statistics.mean(a) - statistics.mean(b)) / math.sqrt(va + vb)
    df = (va + vb) ** 2 / (va**2 / (len(a) - 1) + vb**2 / (len(b) - 1))
    try:
        from scipy.stats import t as student

        p = 2 * student.sf(abs(t), df)
    except ImportError:
        p = float("nan")
    return t, df, p, student_quantile(df) * math.sqrt(va + vb)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("groups", nargs="+", help="LABEL=GLOB or LABEL=A,B,C")
    ap.add_argument("--pair", nargs=2, action="append", default=[], metavar=("A", "B"))
    args = ap.parse_args()
    groups = dict(group(g) for g in args.groups)
    print("| runs | n | test accuracy (mean ± std) | 95 % CI of the mean | per run |")
    print("|---|---|---|---|---|")
    for label, accs in groups.items():
        if not accs:
            print(f"| {label} | 0 | no finished run | | |")
            continue
        mean = statistics.mean(accs)
        std = statistics.stdev(accs) if len(accs) > 1 else 0.0
        ci = f"{mean - mean_ci(accs):.2f}–{mean + mean_ci(accs):.2f} %" if len(accs) > 1 else ""
        runs = ", ".join(f"{a:.2f}" for a in accs)
        print(f"| {label} | {len(accs)} | {mean:.2f} ± {std:.2f} % | {ci} | {runs} |")
    for a, b in args.pair:
        if min(len(groups[a]), len(groups[b])) < 2:
            print(f"\n{a} − {b}: a t-test needs two runs or more in each group")
            continue
        t, df, p, half = welch(groups[a], groups[b])
        diff = statistics.mean(groups[a]) - statistics.mean(groups[b])
        print(
            f"\n{a} − {b}: {diff:+.2f} points (95 % CI {diff - half:+.2f} to {diff + half:+.2f}), "
            f"Welch t = {t:.2f}, df = {df:.1f}, p = {p:.2f}"
        )


if __name__ == "__main__":
    main()
