"""Loads a padnet-wgpu checkpoint into the PyTorch reference ResNet-10 (strict) and checks that
PyTorch reproduces our evaluation logits. Never run by CI. Usage, from the repository root:

    padnet-wgpu eval --checkpoint RUN/model.safetensors --data-dir data/fashion-mnist-subset \
        --limit 200 --logits-out /tmp/ours.npy
    python3 tests/golden/check_checkpoint.py RUN/model.safetensors /tmp/ours.npy 200
"""
import gzip
import struct
import sys

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file
from reference import ResNet10

ckpt, ours_path, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
with safe_open(ckpt, "pt") as f:
    meta = f.metadata()
assert meta["arch"] == "resnet10" and meta["stem"] == "cifar", meta
net = ResNet10(meta["mode"], width=float(meta["width"])).double()
state = {k: v.double() for k, v in load_file(ckpt).items()}
missing, unexpected = net.load_state_dict(state, strict=False)
assert not unexpected and all(k.endswith("num_batches_tracked") for k in missing), (missing, unexpected)
net.eval()

raw = gzip.open("data/fashion-mnist-subset/t10k-images-idx3-ubyte.gz").read()
_, count, h, w = struct.unpack(">IIII", raw[:16])
images = np.frombuffer(raw[16:16 + n * h * w], dtype=np.uint8).reshape(n, 1, h, w)
x = torch.tensor((images / 255.0 - 0.2860) / 0.3530)
with torch.no_grad():
    theirs = net(x, float(meta["temperature"])).numpy()
ours = np.load(ours_path)
err = np.abs(theirs - ours).max() / np.abs(theirs).max()
print(f"max |pytorch - ours| / max |pytorch| = {err:.2e} over {n} images; argmax agreement "
      f"{(theirs.argmax(1) == ours.argmax(1)).mean() * 100:.1f}%")
assert err < 1e-4, err
