"""Writes tests/fixtures/bert_tiny.safetensors from Hugging Face transformers' BertModel (eager
attention, float64, eval mode): a tiny random config, two padded sequences, the weights, the
last hidden state, the pooled output and every parameter gradient of L = sum(pooled * r).
Run from the repository root:
    python3 tests/golden/make_bert_fixture.py
"""
import json
import torch
from safetensors.torch import save_file
from transformers import BertConfig, BertModel

torch.manual_seed(0)
cfg = BertConfig(vocab_size=61, hidden_size=16, num_hidden_layers=2, num_attention_heads=4,
                 intermediate_size=32, max_position_embeddings=12, type_vocab_size=2,
                 hidden_act="gelu", layer_norm_eps=1e-12, attn_implementation="eager")
model = BertModel(cfg).double().eval()
with torch.no_grad():  # non-trivial LayerNorm affine parameters and biases
    for n, p in model.named_parameters():
        if n.endswith("LayerNorm.weight"):
            p.copy_(1 + 0.1 * torch.randn_like(p))
        elif n.endswith("bias"):
            p.normal_(0, 0.1)

input_ids = torch.tensor([[2, 17, 33, 5, 60, 9, 3, 0], [2, 41, 7, 3, 0, 0, 0, 0]])
token_type_ids = torch.tensor([[0, 0, 0, 0, 1, 1, 1, 0], [0, 0, 1, 1, 0, 0, 0, 0]])
attention_mask = torch.tensor([[1, 1, 1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 0, 0, 0, 0]])
out = model(input_ids=input_ids, token_type_ids=token_type_ids, attention_mask=attention_mask)
r = torch.randn_like(out.pooler_output)
(out.pooler_output * r).sum().backward()

tensors = {
    "input_ids": input_ids.double(),
    "token_type_ids": token_type_ids.double(),
    "attention_mask": attention_mask.double(),
    "r": r,
    "last_hidden_state": out.last_hidden_state,
    "pooler_output": out.pooler_output,
}
for n, p in model.named_parameters():
    tensors[n] = p
    tensors["grad." + n] = p.grad
tensors = {k: v.detach().float().contiguous() for k, v in tensors.items()}
keys = ["vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
        "max_position_embeddings", "type_vocab_size", "hidden_act", "layer_norm_eps"]
save_file(tensors, "tests/fixtures/bert_tiny.safetensors",
          metadata={"config": json.dumps({k: getattr(cfg, k) for k in keys})})
