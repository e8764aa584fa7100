"""Writes tests/fixtures/minilm_sentences.safetensors: Hugging Face transformers' BertModel with
the pretrained all-MiniLM-L6-v2 weights (fetched by scripts/fetch-minilm.sh), eager attention,
float64, eval mode, on a few real sentences and one sentence pair, padded to the longest; stores
the tokenizer's ids, segments and mask and the last hidden state. Run from the repository root:
    python3 tests/golden/make_minilm_fixture.py
"""
import json
import torch
from safetensors.torch import save_file
from transformers import BertModel, PreTrainedTokenizerFast

DIR = "models/all-MiniLM-L6-v2"
SINGLE = [
    "Debian is a free operating system.",
    "Python bindings for the GNU Scientific Library (GSL), naïve résumé café!",
    "x",
]
PAIR = ("Is the kernel module loaded?", "Run lsmod | grep vfio to check.")

tok = PreTrainedTokenizerFast(tokenizer_file=f"{DIR}/tokenizer.json")
model = BertModel.from_pretrained(DIR, attn_implementation="eager").double().eval()
enc = [tok(s, return_token_type_ids=True) for s in SINGLE] + [tok(*PAIR, return_token_type_ids=True)]
length = max(len(e["input_ids"]) for e in enc)


def padded(key):
    return torch.tensor([e[key] + [0] * (length - len(e[key])) for e in enc])


ids, types, mask = padded("input_ids"), padded("token_type_ids"), padded("attention_mask")
with torch.no_grad():
    hidden = model(input_ids=ids, token_type_ids=types, attention_mask=mask).last_hidden_state
tensors = {"input_ids": ids, "token_type_ids": types, "attention_mask": mask, "last_hidden_state": hidden}
tensors = {k: v.float().contiguous() for k, v in tensors.items()}
save_file(tensors, "tests/fixtures/minilm_sentences.safetensors",
          metadata={"single": json.dumps(SINGLE), "pair": json.dumps(PAIR)})
print(f"batch {len(enc)} x {length}")
