"""Writes tests/fixtures/*.safetensors from tests/golden/reference.py: inputs, weights, outputs
and every gradient of L = sum(y * r) for fixed random inputs. Run from the repository root:
    python3 tests/golden/make_fixtures.py
"""
import torch
from safetensors.torch import save_file
from reference import PadConv2d, ResNet10

torch.manual_seed(0)
torch.set_default_dtype(torch.float64)  # exact reference; stored as f32
OUT = "tests/fixtures"


def f32(d):
    return {k: v.detach().to(torch.float32).contiguous() for k, v in d.items()}


def layer_case(name, x_shape, o, k, stride=1, padding=0, dilation=1, groups=1, pad=True, lam="both", t=31.0):
    c = x_shape[1]
    layer = PadConv2d(c, o, k, stride, padding, dilation, groups, pad=pad, lam=lam)
    with torch.no_grad():
        if pad:
            layer.phi_d.fill_(0.3)
            layer.attention.fc2.bias.normal_(0, 0.5)
    x = torch.randn(x_shape, requires_grad=True)
    mask = None
    if pad:
        mask = (torch.rand(layer.weight.shape) < 0.4).double().requires_grad_(True)
    y = layer(x, t, mask)
    r = torch.randn_like(y)
    (y * r).sum().backward()
    tensors = {"x": x, "r": r, "y": y, "grad.x": x.grad}
    for n, p in layer.named_parameters():
        tensors[n] = p
        tensors["grad." + n] = p.grad if p.grad is not None else torch.zeros_like(p)  # phi with lambda none
    if pad:
        tensors["kernels_weights_mask"] = mask
        tensors["grad.kernels_weights_mask"] = mask.grad
    meta = {"c": c, "o": o, "k": k, "stride": stride, "padding": padding, "dilation": dilation,
            "groups": groups, "pad": int(pad), "lambda": lam, "temperature": t, "x_shape": list(x_shape)}
    save_file(f32(tensors), f"{OUT}/{name}.safetensors", metadata={k: str(v) for k, v in meta.items()})


for t in (31.0, 1.0):
    tag = int(t)
    layer_case(f"pad_3x3_t{tag}", (2, 5, 7, 6), 6, 3, padding=1, t=t)
    layer_case(f"pad_1x1_t{tag}", (3, 8, 5, 5), 4, 1, t=t)
    layer_case(f"pad_strided_t{tag}", (2, 4, 9, 7), 6, 3, stride=2, padding=1, t=t)
    layer_case(f"pad_grouped_t{tag}", (2, 6, 6, 6), 4, 3, padding=1, groups=2, t=t)
    layer_case(f"pad_depthwise_t{tag}", (2, 6, 7, 7), 6, 3, padding=1, groups=6, t=t)
    layer_case(f"dyn_3x3_t{tag}", (2, 5, 7, 6), 6, 3, padding=1, pad=False, t=t)
for lam in ("s", "d", "none"):
    layer_case(f"pad_lambda_{lam}", (2, 5, 6, 6), 4, 3, padding=1, lam=lam, t=5.0)

# A whole ResNet-10 PAD, train-mode BatchNorm, random masks, forward + backward.
net = ResNet10("pad", width=0.0625)
with torch.no_grad():
    for n, b in net.named_buffers():
        if n.endswith("kernels_weights_mask"):
            b.copy_((torch.rand(b.shape) < 0.5).double())
            b.requires_grad_(True)  # to read dL/dM, IMP's score
    for n, p in net.named_parameters():
        if n.endswith("phi_d"):
            p.normal_(0, 0.5)
x = torch.randn(4, 1, 12, 12, requires_grad=True)
y = net(x, 31.0)
r = torch.randn_like(y)
(y * r).sum().backward()
tensors = {"x": x, "r": r, "y": y, "grad.x": x.grad}
for n, p in net.named_parameters():
    tensors[n] = p
    tensors["grad." + n] = p.grad
for n, b in net.named_buffers():
    if "num_batches" not in n:
        tensors[n] = b
        if b.grad is not None:
            tensors["grad." + n] = b.grad
save_file(f32(tensors), f"{OUT}/resnet10_pad.safetensors", metadata={"temperature": "31", "width": "0.0625"})
print("fixtures written to", OUT)
