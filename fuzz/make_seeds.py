#!/usr/bin/env python3
"""Writes the small seed inputs of the fuzz targets into fuzz/seeds/TARGET/ (committed): one or
two well-formed examples of each format, from which `cargo fuzz run TARGET` mutates, and which
`cargo test` replays (tests/fuzz_corpus.rs). Needs numpy and Pillow; run from anywhere.
The tokenizer seed is all-MiniLM-L6-v2's tokenizer.json cut to its first 2000 vocabulary
entries (models/ from scripts/fetch-minilm.sh)."""
import gzip, io, json, os, struct, sys
import numpy as np
from PIL import Image

root = os.path.dirname(os.path.abspath(__file__))
seeds = os.path.join(root, "seeds")


def put(target, name, data):
    d = os.path.join(seeds, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


rng = np.random.default_rng(0)

# IDX: 3 images of 4x4 bytes and their labels, raw and gzip.
images = bytes([0, 0, 8, 3]) + struct.pack(">III", 3, 4, 4) + rng.integers(0, 256, 48, dtype=np.uint8).tobytes()
labels = bytes([0, 0, 8, 1]) + struct.pack(">I", 3) + bytes([1, 7, 9])
put("idx", "images.idx", images)
put("idx", "labels.idx", labels)
put("idx", "images.idx.gz", gzip.compress(images, mtime=0))

# CIFAR: the first byte picks CIFAR-10 (even) or CIFAR-100 (odd); then two records.
put("cifar", "cifar10.bin", bytes([0]) + b"".join(bytes([c]) + rng.integers(0, 256, 3072, dtype=np.uint8).tobytes() for c in (3, 9)))
put("cifar", "cifar100.bin", bytes([1]) + b"".join(bytes([c, f]) + rng.integers(0, 256, 3072, dtype=np.uint8).tobytes() for c, f in ((1, 42), (19, 99))))

# Images: a small PNG, JPEG and grey PNG.
pixels = rng.integers(0, 256, (12, 20, 3), dtype=np.uint8)
for fmt, mode in (("png", "RGB"), ("jpeg", "RGB"), ("png", "L")):
    buf = io.BytesIO()
    Image.fromarray(pixels if mode == "RGB" else pixels[:, :, 0], mode).save(buf, fmt)
    put("image", f"{mode.lower()}.{fmt}", buf.getvalue())

# TSV: SST-2 (sentence, label) and STS-B (10 columns, score in the last).
put("tsv", "sst2.tsv", b"sentence\tlabel\na fine film\t1\nnot good\t0\n")
stsb = "index\tgenre\tfilename\tyear\told_index\tsource1\tsource2\tsentence1\tsentence2\tscore\n"
stsb += "0\tmain\tx\t2012\t1\tnone\tnone\tA man plays.\tA man is playing.\t4.2\n"
put("tsv", "stsb.tsv", stsb.encode())

# BERT files: the first byte picks config.json (even) or tokenizer.json (odd).
minilm = os.path.join(root, "..", "models", "all-MiniLM-L6-v2")
config = json.load(open(os.path.join(minilm, "config.json")))
put("bert_files", "config.json", b"\0" + json.dumps(config).encode())
tok = json.load(open(os.path.join(minilm, "tokenizer.json")))
vocab = tok["model"]["vocab"]
tok["model"]["vocab"] = {t: i for t, i in vocab.items() if i < 2000}
put("bert_files", "tokenizer.json", b"\1" + json.dumps(tok).encode())


def safetensors(tensors, metadata):
    header, data = {"__metadata__": metadata}, b""
    for name, (dtype, shape, raw) in tensors.items():
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + data


def f32(a):
    return ("F32", list(a.shape), a.astype("<f4").tobytes())


# A deploy file of the layers fuzz/targets.rs unpacks: layer1.0.conv1 (K=2, 4x4x3x3 = 144
# positions, half dynamic) and a PAD-MoE layer (2 experts of 4x8 = 32 positions, half dynamic).
def layer(prefix, k, n):
    bits = np.packbits(np.arange(n) % 2 == 0, bitorder="little")
    d = n // 2
    return {
        f"{prefix}.mask_bits": ("U8", [len(bits)], bits.tobytes()),
        f"{prefix}.static": f32(rng.standard_normal(n - d)),
        f"{prefix}.dynamic": f32(rng.standard_normal(k * d)),
    }


deploy = {**layer("layer1.0.conv1", 2, 144), **layer("encoder.layer.0.output.dense", 2, 32)}
put("safetensors", "deploy.safetensors", safetensors(deploy, {"format": "padnet-wgpu-deploy"}))
train = {"conv1.weight": f32(rng.standard_normal((4, 1, 3, 3))), "fc.bias": ("F16", [2], np.ones(2, "<f2").tobytes())}
put("safetensors", "train.safetensors", safetensors(train, {"format": "padnet-wgpu", "model": "simple-cnn"}))
print("seeds written to", seeds, file=sys.stderr)
