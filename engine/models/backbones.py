"""Encoders: a small CNN for the CPU, ResNet-18 (CIFAR stem for small images), ViTs for MAE/DINO."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


class Normalize(nn.Module):
    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, x):
        return (x - self.mean) / self.std


def _conv_bn(cin: int, cout: int) -> list[nn.Module]:
    return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]


class SmallCNN(nn.Module):
    """Four conv blocks (32-64-128-256 channels by default), pooled early: learns in minutes on a CPU.

    ``convs`` convolutions per block; each block but the last halves the resolution. Global
    average pooling gives a ``feature_dim`` vector for any input size (tiles and patches too).
    A block max-pools between its last BatchNorm and ReLU: max-pooling commutes with ReLU (both
    pick the same element, gradients included), so this is the usual conv-BN-ReLU-pool block with
    the ReLU on a quarter of the pixels: a SimCLR step 1.06x as fast on a CPU, with identical outputs
    and gradients.
    ``pool_first``: a block max-pools its convolution's output before its BatchNorm and ReLU (as in
    Keller Jordan's fast CIFAR-10 networks), so BatchNorm too runs on a quarter of the pixels
    (``small_cnn_fast``): a SimCLR step 1.2x as fast again on a CPU, where these memory-bound layers
    take about half of the backbone's time; SimCLR learns as much per step with it, DINO less.
    """

    kind = "cnn"

    def __init__(self, widths=(32, 64, 128, 256), convs: int = 1, pool_first: bool = False):
        super().__init__()
        self.norm = Normalize()
        layers: list[nn.Module] = []
        cin = 3
        for i, w in enumerate(widths):
            pool = [nn.MaxPool2d(2, ceil_mode=True)] if i < len(widths) - 1 else []
            for j in range(convs):
                conv, bn, relu = _conv_bn(cin if j == 0 else w, w)
                tail = pool if j == convs - 1 else []
                layers += [conv, *tail, bn, relu] if pool_first else [conv, bn, *tail, relu]
            cin = w
        self.features = nn.Sequential(*layers)
        self.feature_dim = widths[-1]

    def forward_map(self, x):
        return self.features(self.norm(x))

    def forward(self, x):
        return self.forward_map(x).mean(dim=(2, 3))


class ResNet(nn.Module):
    """torchvision's ResNet-18/34/50 with the classifier removed; CIFAR stem (3x3, no max-pool)
    for images of 64 pixels or less."""

    kind = "cnn"

    def __init__(self, depth: int = 18, image_size: int = 32):
        super().__init__()
        import torchvision.models as tvm

        net = {18: tvm.resnet18, 34: tvm.resnet34, 50: tvm.resnet50}[depth](weights=None)
        if image_size <= 64:
            net.conv1 = nn.Conv2d(3, 64, 3, 1, 1, bias=False)
            net.maxpool = nn.Identity()
        self.feature_dim = net.fc.in_features
        net.fc = nn.Identity()
        self.norm = Normalize()
        self.net = net

    def forward_map(self, x):
        n = self.net
        x = n.maxpool(n.relu(n.bn1(n.conv1(self.norm(x)))))
        return n.layer4(n.layer3(n.layer2(n.layer1(x))))

    def forward(self, x):
        return self.forward_map(x).mean(dim=(2, 3))


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.heads = heads
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x):
        b, n, d = x.shape
        qkv = self.qkv(self.norm1(x)).view(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(qkv[0], qkv[1], qkv[2])
        x = x + self.proj(y.transpose(1, 2).reshape(b, n, d))
        return x + self.mlp(self.norm2(x))


def sincos_pos_embed(dim: int, grid: int) -> torch.Tensor:
    """Fixed 2-D sine-cosine position embeddings ``(grid*grid, dim)`` (as MAE)."""
    ys, xs = torch.meshgrid(torch.arange(grid, dtype=torch.float32), torch.arange(grid, dtype=torch.float32),
                            indexing="ij")
    quarter = dim // 4
    omega = 1.0 / (10000 ** (torch.arange(quarter, dtype=torch.float32) / quarter))
    parts = []
    for pos in (ys.flatten(), xs.flatten()):
        out = pos[:, None] * omega[None]
        parts += [torch.sin(out), torch.cos(out)]
    emb = torch.cat(parts, dim=1)
    if emb.shape[1] < dim:
        emb = F.pad(emb, (0, dim - emb.shape[1]))
    return emb


class ViT(nn.Module):
    """A plain ViT with a class token. ``forward`` gives the class token's features;
    ``forward_tokens(x, ids_keep)`` encodes only the kept patches (MAE)."""

    kind = "vit"

    def __init__(self, image_size: int = 32, patch: int = 4, dim: int = 192, depth: int = 12, heads: int = 3,
                 mlp_ratio: float = 4.0):
        super().__init__()
        if image_size % patch:
            raise ValueError(f"image size {image_size} is not a multiple of the patch size {patch}")
        self.norm_in = Normalize()
        self.patch = patch
        self.grid = image_size // patch
        self.num_patches = self.grid * self.grid
        self.embed_dim = dim
        self.feature_dim = dim
        self.patch_embed = nn.Conv2d(3, dim, patch, patch)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.register_buffer("pos_embed", sincos_pos_embed(dim, self.grid).unsqueeze(0), persistent=False)
        self.blocks = nn.ModuleList([Block(dim, heads, mlp_ratio) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        nn.init.normal_(self.cls_token, std=0.02)
        self.apply(self._init)

    @staticmethod
    def _init(m):
        if isinstance(m, nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    def _pos(self, h: int, w: int) -> torch.Tensor:
        gh, gw = h // self.patch, w // self.patch
        if gh == self.grid and gw == self.grid:
            return self.pos_embed
        return sincos_pos_embed(self.embed_dim, gh).to(self.pos_embed.device).unsqueeze(0)

    def _embed(self, x, ids_keep: torch.Tensor | None = None):
        h, w = x.shape[-2:]
        t = self.patch_embed(self.norm_in(x)).flatten(2).transpose(1, 2)  # (B, L, D)
        t = t + self._pos(h, w)
        if ids_keep is not None:
            t = torch.gather(t, 1, ids_keep.unsqueeze(-1).expand(-1, -1, t.shape[-1]))
        cls = self.cls_token.expand(t.shape[0], -1, -1)
        return torch.cat([cls, t], dim=1)

    def forward_tokens(self, x, ids_keep: torch.Tensor | None = None):
        """Encoded tokens ``(B, 1 + K, dim)``: the class token then the kept patches."""
        t = self._embed(x, ids_keep)
        for blk in self.blocks:
            t = blk(t)
        return self.norm(t)

    def cls_attention(self, x):
        """The last block's attention of the class token to each patch, per head: ``(B, heads, gh, gw)``
        (the blocks compute attention fused, so the last one's weights are computed here explicitly)."""
        t = self._embed(x)
        for blk in self.blocks[:-1]:
            t = blk(t)
        last = self.blocks[-1]
        b, n, d = t.shape
        qkv = last.qkv(last.norm1(t)).view(b, n, 3, last.heads, d // last.heads).permute(2, 0, 3, 1, 4)
        q, k = qkv[0], qkv[1]
        a = ((q[:, :, :1] * (d // last.heads) ** -0.5) @ k.transpose(-2, -1)).softmax(dim=-1)[:, :, 0, 1:]
        return a.reshape(b, last.heads, x.shape[-2] // self.patch, x.shape[-1] // self.patch)

    def forward(self, x):
        t = self.forward_tokens(x)
        return t[:, 0]


def _vit_patch(image_size: int) -> int:
    for p in (4, 8, 16):
        if image_size // p <= 16 and image_size % p == 0:
            return p
    return 16 if image_size % 16 == 0 else math.gcd(image_size, 16)


# ViTs whose patch size is fixed by their name (the others take _vit_patch of the image size)
FIXED_PATCH = {"vit_mini_patch8": ("vit_mini", 8)}


def vit_patch(name: str, image_size: int) -> int:
    """The patch size of workbench ViT ``name`` at ``image_size``: its name's where it fixes one, else the
    smallest of 4, 8 and 16 that keeps the grid at 16 a side or less."""
    return FIXED_PATCH[name][1] if name in FIXED_PATCH else _vit_patch(image_size)


BACKBONES = {
    "small_cnn": "4 conv blocks (32-256 channels): fast on a CPU, the default there",
    "small_cnn_fast": "small_cnn pooling before BatchNorm: 1.2x the steps, as good for SimCLR, "
                      "worse for DINO",
    "small_cnn_wide": "4 conv blocks (64-512 channels), two convs per block: slower, stronger",
    "resnet18": "ResNet-18 (CIFAR stem for small images): the default on a GPU",
    "resnet34": "ResNet-34",
    "resnet50": "ResNet-50",
    "vit_mini": "a 6-block ViT (dim 128): MAE and DINO on a CPU",
    "vit_mini_patch8": "vit_mini on 8-pixel patches (16 to a 32-pixel image, a quarter of the tokens): about 3 "
                       "times the steps a second; MAE's recipe on photographs",
    "vit_tiny": "ViT-Tiny (12 blocks, dim 192, 3 heads): MAE and DINO on a GPU",
    "vit_small": "ViT-Small (12 blocks, dim 384, 6 heads)",
}


def backbone_names() -> list[str]:
    return list(BACKBONES)


def default_backbone(device_type: str, prefer: str = "cnn") -> str:
    gpu = device_type in ("cuda", "mps")
    if prefer == "vit":
        return "vit_tiny" if gpu else "vit_mini"
    return "resnet18" if gpu else "small_cnn"


def build_backbone(name: str, image_size: int = 32) -> nn.Module:
    """A backbone with random weights: a workbench one by name, or a torchvision/timm model by its
    architecture name (``torchvision:NAME[:WEIGHTS]``, ``timm:NAME``: :mod:`engine.models.external`, which
    preprocesses any image size itself)."""
    from engine.params import ConfigError

    if ":" in str(name):
        from engine.models.external import build_external, is_external

        if is_external(name):
            return build_external(name)
    if name == "small_cnn":
        return SmallCNN()
    if name == "small_cnn_fast":
        return SmallCNN(pool_first=True)
    if name == "small_cnn_wide":
        return SmallCNN(widths=(64, 128, 256, 512), convs=2)
    if name.startswith("resnet"):
        return ResNet(int(name[len("resnet"):]), image_size)
    if name.startswith("vit_"):
        patch = vit_patch(name, image_size)
        if image_size % patch:
            raise ConfigError("backbone", f"{name} needs an image size divisible by {patch}; got {image_size}")
        dims = {"vit_mini": (128, 6, 4), "vit_tiny": (192, 12, 3), "vit_small": (384, 12, 6)}
        base = FIXED_PATCH.get(name, (name,))[0]
        if base in dims:
            d, depth, heads = dims[base]
            return ViT(image_size, patch, d, depth, heads)
    raise ConfigError("backbone", f"unknown backbone {name!r}; choose one of: {', '.join(BACKBONES)}")


def last_block(backbone: nn.Module) -> nn.Module | None:
    """The encoder's last block: small_cnn's last convolution with its BatchNorm, a ResNet's ``layer4``, a
    ViT's last transformer block; None for an encoder the workbench does not know the blocks of. (A pretext
    that would specialise it to its own task can leave it as initialised: ``keep_last_block``.)"""
    if isinstance(backbone, SmallCNN):
        mods = list(backbone.features)
        first = max(i for i, m in enumerate(mods) if isinstance(m, nn.Conv2d))
        return nn.Sequential(*mods[first:])  # the same modules
    if isinstance(backbone, ResNet):
        return backbone.net.layer4
    if isinstance(backbone, ViT):
        return backbone.blocks[-1]
    return None


def keep_last_block(backbone: nn.Module, method: str) -> None:
    """Leave the encoder's last block as initialised (its weights take no gradient; BatchNorm statistics still
    follow the data): the blocks below learn through it. ConfigError naming the option where the encoder's
    blocks are unknown."""
    block = last_block(backbone)
    if block is None:
        from engine.params import ConfigError

        raise ConfigError("method_options.train_last_block",
                          f"{method} cannot keep the last block of a {type(backbone).__name__} as initialised (only "
                          "small_cnn, the ResNets and the workbench's ViTs): set train_last_block to true")
    for p in block.parameters():
        p.requires_grad_(False)
