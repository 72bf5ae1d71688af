"""How much of a SimCLR step the augmentation pipeline costs, and ours vs the per-image pipeline.

Measures, side by side in one run, with SimCLR's CPU defaults (small_cnn, its batch size):
- ``full_step_images_per_s``: augmentation of two views + forward + backward + optimiser step,
  from the uint8 tensor cache (what the session does);
- ``model_only_images_per_s``: forward + backward + optimiser step on the same, already
  augmented, batch;
- ``augment_fraction``: the share of a full step spent outside the model (target < 0.10);
- ``per_image_pipeline_images_per_s``: the common recipe, torchvision transforms applied per
  image in a DataLoader with 2 workers, feeding the same model; and ``speedup_vs_per_image``.

    python bench/pipeline.py [--data SPEC] [--steps N] [--batch-size B]

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
from engine.models import build_backbone  # noqa: E402
from engine.seeds import epoch_order, step_generator  # noqa: E402
from engine.training.device import place_model  # noqa: E402
from engine.training.optim import build_optimizer  # noqa: E402

CIFAR = ROOT.parent / "shared" / "datasets" / "cifar10-small" / "train"


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
    args = p.parse_args()

    cfg = default_config("simclr")
    bs = args.batch_size or cfg.optim.batch_size
    data = load_dataset(args.data, 32)
    cls = get_method_class("simclr")
    torch.manual_seed(0)
    method = place_model(cls(cfg.method_config(), build_backbone("small_cnn", 32), DataInfo(32, 0)),
                         torch.device("cpu"))
    method.train()
    opt = build_optimizer(method, cfg)
    order = epoch_order(len(data), 0, 0)
    dev = torch.device("cpu")

    def optimise(loss):
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def full_step(k):
        idx = order[(k * bs) % (len(data) - bs):][:bs]
        x = data.images.index_select(0, idx).float().div_(255)
        optimise(method.training_step(x, None, step_generator(0, k, 0, dev)).loss)

    x0 = data.images[order[:bs]].float().div(255)
    v1, v2 = method.make_batch(x0, step_generator(0, 0, 0, dev)).inputs
    from engine.methods.losses import nt_xent

    def model_step(k):
        z = method.projector(method.backbone(torch.cat([v1, v2])))
        optimise(nt_xent(*z.chunk(2), method.cfg.temperature)[0])

    def timed(fn, n):
        fn(0)  # warm-up
        t = time.perf_counter()
        for k in range(1, n + 1):
            fn(k)
        return (time.perf_counter() - t) / n

    # interleave the two measurements so machine noise hits both alike
    t_full, t_model = [], []
    for _ in range(3):
        t_full.append(timed(full_step, max(1, args.steps // 3)))
        t_model.append(timed(model_step, max(1, args.steps // 3)))
    tf, tm = min(t_full), min(t_model)

    # the augmentation alone
    def aug_only(k):
        method.make_batch(x0, step_generator(0, k, 0, dev))

    t_aug = timed(aug_only, args.steps)

    loader = per_image_loader(data, bs, args.workers)
    it = iter(loader)

    def per_image_step(k):
        nonlocal it
        try:
            a, b = next(it)
        except StopIteration:
            it = iter(loader)
            a, b = next(it)
        z = method.projector(method.backbone(torch.cat([a, b])))
        optimise(nt_xent(*z.chunk(2), method.cfg.temperature)[0])

    t_per_image = timed(per_image_step, args.steps)
    out = {
        "data": args.data, "batch_size": bs, "threads": torch.get_num_threads(), "cpus": os.cpu_count(),
        "full_step_images_per_s": round(bs / tf, 1),
        "model_only_images_per_s": round(bs / tm, 1),
        "augment_only_ms_per_batch": round(t_aug * 1000, 2),
        "augment_fraction": round(max(0.0, (tf - tm) / tf), 4),
        "per_image_pipeline_images_per_s": round(bs / t_per_image, 1),
        "speedup_vs_per_image": round(t_per_image / tf, 2),
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
