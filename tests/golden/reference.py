"""PyTorch reference of PAD-Net's dynamic layers and ResNet (docs/method.md §1.1, §1.2, §3, §4),
with the authors' module and parameter names. Used to write the golden fixtures that the Rust
tests compare against, and to check that PyTorch loads our checkpoints. Needs torch and
safetensors; never run by CI.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F


class Attention(nn.Module):
    """Global average pool -> fc1 (1x1 conv, no bias) -> ReLU -> fc2 (1x1 conv + bias) -> softmax(z/T)."""

    def __init__(self, c, k, reduction=16):
        super().__init__()
        hidden = max(1, c // reduction)
        self.fc1 = nn.Conv2d(c, hidden, 1, bias=False)
        self.fc2 = nn.Conv2d(hidden, k, 1, bias=True)
        nn.init.normal_(self.fc1.weight, 0, (2.0 / hidden) ** 0.5)
        nn.init.normal_(self.fc2.weight, 0, (2.0 / k) ** 0.5)
        nn.init.zeros_(self.fc2.bias)

    def forward(self, x, temperature):
        p = x.mean((2, 3), keepdim=True)
        z = self.fc2(F.relu(self.fc1(p))).flatten(1)
        return F.softmax(z / temperature, dim=1)


class PadConv2d(nn.Module):
    """PAD_DynamicConvolution (pad=True) or DynamicConvolution (pad=False), no bias."""

    def __init__(self, c, o, k, stride=1, padding=0, dilation=1, groups=1, kernels=4, pad=True, lam="both"):
        super().__init__()
        self.c, self.o, self.k, self.groups = c, o, k, groups
        self.stride, self.padding, self.dilation = stride, padding, dilation
        self.pad, self.lam = pad, lam
        self.attention = Attention(c, kernels)
        shape = (kernels, o, c // groups, k, k)
        std = (2.0 / (k * k * o)) ** 0.5
        if pad:
            self.kernels_weights = nn.Parameter(torch.randn(shape) * std)
            self.weight = nn.Parameter(torch.randn((1,) + shape[1:]) * std)
            self.register_buffer("kernels_weights_mask", torch.ones((1,) + shape[1:]))
            self.phi_d = nn.Parameter(torch.zeros(1))
        else:
            self.weight = nn.Parameter(torch.randn(shape) * std)

    def lambdas(self):
        s = torch.sigmoid(self.phi_d)
        one = torch.ones_like(s)
        return {"both": (2 * s, 2 - 2 * s), "s": (one, 2 - 2 * s), "d": (2 * s, one), "none": (one, one)}[self.lam]

    def forward(self, x, temperature, mask=None):
        b = x.shape[0]
        alpha = self.attention(x, temperature)
        kernels = self.kernels_weights if self.pad else self.weight
        d = torch.einsum("bk,koihw->boihw", alpha, kernels)
        if self.pad:
            m = self.kernels_weights_mask if mask is None else mask
            ld, ls = self.lambdas()
            w = ld * m * d + ls * (1 - m) * self.weight
        else:
            w = d
        # One convolution for the whole batch: samples folded into groups.
        y = F.conv2d(x.reshape(1, b * self.c, *x.shape[2:]), w.reshape(b * self.o, *w.shape[2:]),
                     stride=self.stride, padding=self.padding, dilation=self.dilation, groups=b * self.groups)
        return y.reshape(b, self.o, *y.shape[2:])


def block_conv(mode, c, o, k, stride=1, padding=0, groups=1):
    if mode == "static":
        conv = nn.Conv2d(c, o, k, stride, padding, groups=groups, bias=False)
        nn.init.normal_(conv.weight, 0, (2.0 / (k * k * o)) ** 0.5)
        return conv
    return PadConv2d(c, o, k, stride, padding, groups=groups, pad=(mode == "pad"))


def call(module, x, t):
    """A block convolution: dynamic ones take the temperature."""
    return module(x, t) if isinstance(module, PadConv2d) else module(x)


class Seq(nn.Module):
    """The reference's container: children under `.layers.`."""

    def __init__(self, *mods):
        super().__init__()
        self.layers = nn.ModuleList(mods)


class BasicBlock(nn.Module):
    def __init__(self, mode, cin, planes, stride):
        super().__init__()
        self.conv1 = block_conv(mode, cin, planes, 3, stride, 1)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = block_conv(mode, planes, planes, 3, 1, 1)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = None
        if stride != 1 or cin != planes:
            self.shortcut = Seq(block_conv(mode, cin, planes, 1, stride, 0), nn.BatchNorm2d(planes))

    def forward(self, x, t):
        out = F.relu(self.bn1(call(self.conv1, x, t)))
        out = self.bn2(call(self.conv2, out, t))
        sc = x if self.shortcut is None else self.shortcut.layers[1](call(self.shortcut.layers[0], x, t))
        return F.relu(out + sc)


class ResNet10(nn.Module):
    """ResNet-10 (BasicBlock, [1,1,1,1]) or, with blocks=2, ResNet-18 ([2,2,2,2]); cifar stem
    (3x3/1 conv, no max-pool), width multiplier."""

    def __init__(self, mode="pad", width=0.125, in_ch=1, classes=10, blocks=1):
        super().__init__()
        ch = lambda c: max(1, round(c * width))
        c0 = ch(64)
        self.conv1 = nn.Conv2d(in_ch, c0, 3, 1, 1, bias=False)
        nn.init.normal_(self.conv1.weight, 0, (2.0 / (9 * c0)) ** 0.5)
        self.bn1 = nn.BatchNorm2d(c0)
        cin = c0
        for i, planes in enumerate([64, 128, 256, 512]):
            p = ch(planes)
            layer = []
            for j in range(blocks):
                layer.append(BasicBlock(mode, cin, p, 2 if i > 0 and j == 0 else 1))
                cin = p
            setattr(self, f"layer{i + 1}", Seq(*layer))
        self.linear = nn.Conv2d(cin, classes, 1, bias=True)
        nn.init.normal_(self.linear.weight, 0, (2.0 / classes) ** 0.5)
        nn.init.zeros_(self.linear.bias)

    def forward(self, x, t):
        x = F.relu(self.bn1(self.conv1(x)))
        for i in range(4):
            for block in getattr(self, f"layer{i + 1}").layers:
                x = block(x, t)
        return self.linear(x.mean((2, 3), keepdim=True)).flatten(1)


def make_divisible(v, d=8):
    """Channels rounded to a multiple of 8, never more than 10 % below v (torchvision's rule)."""
    r = max(d, int((v + d / 2) // d * d))
    return r + d if r < 0.9 * v else r


class InvertedResidual(nn.Module):
    """1x1 expansion (absent when t = 1), 3x3 depthwise, 1x1 projection; each a block conv + BN."""

    def __init__(self, mode, inp, out, t, stride):
        super().__init__()
        hidden = inp * t
        self.expand = t != 1
        if self.expand:
            self.conv1 = block_conv(mode, inp, hidden, 1)
            self.bn1 = nn.BatchNorm2d(hidden)
        self.conv2 = block_conv(mode, hidden, hidden, 3, stride, 1, groups=hidden)
        self.bn2 = nn.BatchNorm2d(hidden)
        self.conv3 = block_conv(mode, hidden, out, 1)
        self.bn3 = nn.BatchNorm2d(out)
        self.residual = stride == 1 and inp == out

    def forward(self, x, t):
        h = F.relu6(self.bn1(call(self.conv1, x, t))) if self.expand else x
        h = F.relu6(self.bn2(call(self.conv2, h, t)))
        h = self.bn3(call(self.conv3, h, t))
        return h + x if self.residual else h


class MobileNetV2(nn.Module):
    """src/models/mobilenetv2.rs: static stem and classifier, every block convolution and the
    final 1x1 to 1280 static, DY-Conv or PAD-Conv; names as there."""

    CONFIG = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]

    def __init__(self, mode="pad", width=1.0, in_ch=1, classes=10, stem="cifar"):
        super().__init__()
        c = make_divisible(32 * width)
        self.conv1 = nn.Conv2d(in_ch, c, 3, 1 if stem == "cifar" else 2, 1, bias=False)
        nn.init.normal_(self.conv1.weight, 0, (2.0 / (9 * c)) ** 0.5)
        self.bn1 = nn.BatchNorm2d(c)
        blocks = []
        for t, ch, n, s in self.CONFIG:
            out = make_divisible(ch * width)
            for j in range(n):
                blocks.append(InvertedResidual(mode, c, out, t, s if j == 0 else 1))
                c = out
        self.layers = Seq(*blocks)
        last = make_divisible(1280 * max(1.0, width))
        self.conv2 = block_conv(mode, c, last, 1)
        self.bn2 = nn.BatchNorm2d(last)
        self.linear = nn.Conv2d(last, classes, 1, bias=True)
        # He by fan-in (src/models/resnet.rs HeadInit::FanIn): by fan-out over 10 classes
        # the 1280 features would start with logits of std 7.
        nn.init.normal_(self.linear.weight, 0, (2.0 / last) ** 0.5)
        nn.init.zeros_(self.linear.bias)

    def forward(self, x, t):
        x = F.relu6(self.bn1(self.conv1(x)))
        for block in self.layers.layers:
            x = block(x, t)
        x = F.relu6(self.bn2(call(self.conv2, x, t)))
        return self.linear(x.mean((2, 3), keepdim=True)).flatten(1)
