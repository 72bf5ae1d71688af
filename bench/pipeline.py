"""How much of a SimCLR step the augmentation pipeline costs, and ours vs the per-image pipeline.

Measures, side by side in one run, with SimCLR's CPU defaults (small_cnn, its batch size; two views, no
local crops, like the per-image pipeline it is compared with):
- ``full_step_images_per_s``: augmentation of two views + forward + backward + optimiser step,
  from the uint8 tensor cache (what the session does);
- ``model_only_images_per_s``: forward + backward + optimiser step on the same, already
  augmented, batch;
- ``augment_fraction``: the share of a full step spent outside the model (target < 0.10);
- ``per_image_pipeline_images_per_s``: the common recipe, torchvision transforms applied per
  image in a DataLoader with 2 workers, feeding the same model; and ``speedup_vs_per_image``;
- ``model_tflop`` (forward + backward of one batch, counted by torch's FlopCounterMode),
  ``full_step_tflops`` / ``model_only_tflops`` (achieved TFLOP/s) and, on a GPU whose peak is known,
  ``peak_tflops`` and ``full_step_mfu`` (achieved / peak). On a GPU the step runs as the session
  runs it: channels-last, bf16 autocast, the GPU default backbone (resnet18).

    python bench/pipeline.py [--data SPEC] [--steps N] [--batch-size B] [--device auto|cpu|cuda] [--compile]

``--compile`` compiles the training step with torch.compile (the session's ``--compile``).
``--precision`` as the session's (default auto: bf16 autocast on GPUs and on CPUs with AMX or
AVX512-BF16); with mixed precision on, the same full step also runs in float32 beside it
(``full_step_fp32_images_per_s``, ``mixed_precision_speedup``).

The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from engine.config import default_config  # noqa: E402
from engine.data import load_dataset  # noqa: E402
from engine.methods import DataInfo, get_method_class  # noqa: E402
from engine.models import build_backbone, default_backbone  # noqa: E402
from engine.seeds import epoch_order, step_generator  # noqa: E402
from engine.training.batch import cpu_batch  # noqa: E402
from engine.training.device import Precision, place_model, resolve_device  # noqa: E402
from engine.training.distributed import wrap_step  # noqa: E402
from engine.training.optim import build_optimizer  # noqa: E402

CIFAR = ROOT.parent / "shared" / "datasets" / "cifar10-small" / "train"

# dense bf16 tensor-core peaks (TFLOP/s) from the vendors' data sheets, matched on the device name
PEAK_BF16_TFLOPS = {"H200": 989.0, "H100": 989.0, "A100": 312.0, "L40S": 362.0, "L4": 121.0, "A10": 125.0,
                    "RTX 4090": 165.0, "RTX 3090": 71.0, "V100": 125.0}


def peak_tflops(device: torch.device) -> float | None:
    """The device's dense bf16 peak, or None where it is not known (CPUs, unlisted GPUs)."""
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, value in PEAK_BF16_TFLOPS.items():
        if key in name:
            return value
    return None


def count_tflop(fn) -> float:
    """TFLOP of one call of ``fn`` (matmuls and convolutions, forward and backward)."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops() / 1e12


def per_image_loader(data, batch_size: int, workers: int):
    """torchvision v2 transforms on one image at a time, in DataLoader workers (the usual recipe)."""
    from torchvision.transforms import v2

    aug = v2.Compose([
        v2.RandomResizedCrop(data.image_size, scale=(0.2, 1.0), antialias=True),
        v2.RandomHorizontalFlip(),
        v2.RandomApply([v2.ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8),
        v2.RandomGrayscale(p=0.2),
        v2.ToDtype(torch.float32, scale=True),
    ])

    class Pairs(torch.utils.data.Dataset):
        def __len__(self):
            return len(data)

        def __getitem__(self, i):
            img = data.images[i]
            return aug(img), aug(img)

    return torch.utils.data.DataLoader(Pairs(), batch_size=batch_size, shuffle=True, num_workers=workers,
                                       drop_last=True, persistent_workers=workers > 0)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", default=str(CIFAR) if CIFAR.exists() else "builtin:shapes:4000")
    p.add_argument("--steps", type=int, default=12, help="timed steps per measurement")
    p.add_argument("--batch-size", type=int, default=0, help="default: SimCLR's CPU default")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    p.add_argument("--compile", action="store_true", help="compile the training step with torch.compile")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"],
                   help="as the session's (auto: bf16 on GPUs and on CPUs that compute bf16 natively)")
    args = p.parse_args()

    dev = resolve_device(args.device)
    # two views, as the per-image recipe it is compared with (SimCLR's local crops are off here)
    cfg = default_config("simclr", method_options={"local_crops": 0})
    cls = get_method_class("simclr")
    bs = args.batch_size or (cpu_batch(cls) if dev.type == "cpu" else cls.gpu_batch)  # what auto aims at
    data = load_dataset(args.data, 32)
    if dev.type != "cpu":
        data.to(dev)
    torch.manual_seed(0)
    backbone = default_backbone(dev.type)
    method = place_model(cls(cfg.method_config(), build_backbone(backbone, 32), DataInfo(32, 0)), dev)
    method.train()
    opt = build_optimizer(method, cfg)
    precision = Precision(dev, args.precision)
    step_fn = wrap_step(method, dev, 1, compile=args.compile)  # the session's step, compiled as it compiles it
    order = epoch_order(len(data), 0, 0)

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    def optimise(loss):
        opt.zero_grad(set_to_none=True)
        precision.backward(loss, opt)
        precision.step(opt)

    def full_step(k):
        idx = order[(k * bs) % (len(data) - bs):][:bs].to(data.images.device)
        x = data.images.index_select(0, idx).float().div_(255)
        with precision.autocast():
            loss, _ = step_fn(x, None, step_generator(0, k, 0, dev))
        optimise(loss)

    x0 = data.images[order[:bs].to(data.images.device)].float().div(255)
    v1, v2 = method.make_batch(x0, step_generator(0, 0, 0, dev)).inputs
    def model_loss():
        with precision.autocast():
            z = method.projector(method.backbone(torch.cat([v1, v2])))
            return method.losses.nt_xent(*z.chunk(2), method.cfg.temperature)[0]

    def model_step(k):
        optimise(model_loss())

    def timed(fn, n):
        fn(0)  # warm-up
        sync()
        t = time.perf_counter()
        for k in range(1, n + 1):
            fn(k)
        sync()
        return (time.perf_counter() - t) / n

    if args.compile:  # the first calls compile; keep them out of the timings
        for k in range(3):
            full_step(k)
    tflop = count_tflop(lambda: model_loss().backward())

    # interleave the two measurements so machine noise hits both alike
    t_full, t_model = [], []
    for _ in range(3):
        t_full.append(timed(full_step, max(1, args.steps // 3)))
        t_model.append(timed(model_step, max(1, args.steps // 3)))
    tf, tm = min(t_full), min(t_model)

    # the same full step in float32, beside it: what mixed precision buys (when it is on)
    t_fp32 = None
    if precision.amp_dtype is not None:
        amp = precision.amp_dtype
        precision.amp_dtype = None
        t_fp32 = min(timed(full_step, max(1, args.steps // 3)) for _ in range(2))
        precision.amp_dtype = amp

    # the augmentation alone
    def aug_only(k):
        method.make_batch(x0, step_generator(0, k, 0, dev))

    t_aug = timed(aug_only, args.steps)

    loader = per_image_loader(data.to("cpu") if dev.type != "cpu" else data, bs, args.workers)
    it = iter(loader)

    def per_image_step(k):
        nonlocal it
        try:
            a, b = next(it)
        except StopIteration:
            it = iter(loader)
            a, b = next(it)
        with precision.autocast():
            z = method.projector(method.backbone(torch.cat([a, b]).to(dev, non_blocking=True)))
            loss = method.losses.nt_xent(*z.chunk(2), method.cfg.temperature)[0]
        optimise(loss)

    t_per_image = timed(per_image_step, args.steps)
    peak = peak_tflops(dev)
    out = {
        "data": args.data, "batch_size": bs, "threads": torch.get_num_threads(), "cpus": os.cpu_count(),
        "device": str(dev), "backbone": backbone, "precision": str(precision.amp_dtype or "fp32"),
        "compile": args.compile,
        "full_step_images_per_s": round(bs / tf, 1),
        "model_only_images_per_s": round(bs / tm, 1),
        "augment_only_ms_per_batch": round(t_aug * 1000, 2),
        "augment_fraction": round(max(0.0, (tf - tm) / tf), 4),
        "per_image_pipeline_images_per_s": round(bs / t_per_image, 1),
        "speedup_vs_per_image": round(t_per_image / tf, 2),
        "full_step_fp32_images_per_s": round(bs / t_fp32, 1) if t_fp32 else None,
        "mixed_precision_speedup": round(t_fp32 / tf, 2) if t_fp32 else None,
        "model_tflop": round(tflop, 6),
        "full_step_tflops": round(tflop / tf, 4),
        "model_only_tflops": round(tflop / tm, 4),
        "peak_tflops": peak,
        "full_step_mfu": round(tflop / tf / peak, 4) if peak else None,
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
