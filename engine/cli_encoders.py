"""The encoder a command reads (``--run DIR`` or ``--encoder SPEC [--arch ARCH] [--select PART]``), and
``python main.py attention ...``.

``eval``, ``embed``, ``downstream``, ``invariance`` and ``attention`` take either a workbench run or any
encoder (:mod:`engine.encoders`). With an encoder there is no run config: the data comes from the
command's data flags, and images load at the model's own resize size unless ``--image-size`` says otherwise.
"""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from engine.errors import EXIT_USAGE, EncoderError, UsageError

ENCODER_HELP = ("any encoder instead of a run: torchvision:NAME[:WEIGHTS] (e.g. torchvision:resnet50:IMAGENET1K_V2; "
                "no WEIGHTS: random), timm:NAME (its pretrained weights; timm:NAME:random for random ones), a weights "
                "file (.pth, .pt, .pth.tar, .ckpt, .safetensors, with --arch) or a run folder")


def usage_error(msg: str) -> int:
    print(f"error: {msg}", file=sys.stderr)
    return EXIT_USAGE


def add_source_args(p, run_help: str = "the run folder") -> None:
    p.add_argument("--run", metavar="DIR", help=f"{run_help} (or --encoder)")
    p.add_argument("--encoder", metavar="SPEC", help=ENCODER_HELP)
    p.add_argument("--arch", metavar="ARCH", help="with --encoder FILE: its architecture: torchvision:NAME, timm:NAME "
                   "(options after ?, e.g. timm:vit_small_patch16_224?img_size=96) or a workbench backbone")
    p.add_argument("--select", metavar="PART", help="with --encoder FILE that holds several networks: which one "
                   "(teacher, student, base_encoder, momentum_encoder, ...; default: the teacher, else the online one)")


def check_run_folder(path: str | Path, flag: str = "--run") -> Path:
    """``path`` as a run folder, or a :class:`UsageError` saying what it is instead."""
    path = Path(path).expanduser()
    if not path.exists():
        raise UsageError(f"{flag} {path} does not exist; give a run folder that `python main.py train` wrote")
    if not path.is_dir():
        raise UsageError(f"{flag} {path} is a file, not a run folder; give the folder that holds config.json")
    if not (path / "config.json").is_file():
        raise UsageError(f"{flag} {path} is not a run folder (it has no config.json); give a folder that "
                         "`python main.py train` wrote")
    return path


@dataclass
class Choice:
    """The encoder a command reads, and what it needs to know about it."""

    encoder: object  # nn.Module in eval mode
    name: str  # the row name (the run's method, or the encoder's name)
    backbone: str  # its architecture (a random-init baseline is built from it)
    image_size: int
    seed: int
    key: str  # a feature-cache key
    about: dict = field(default_factory=dict)  # what the JSON output says about it


def choose_encoder(args, device) -> Choice:
    """The encoder of ``--run`` or ``--encoder``; one-line errors (UsageError, ConfigError, EncoderError)."""
    run, spec = getattr(args, "run", None), getattr(args, "encoder", None)
    if bool(run) == bool(spec):
        raise UsageError("give the encoder to read: --run DIR (a workbench run) or --encoder SPEC (any encoder), "
                         "one of them")
    if run:
        for flag in ("arch", "select"):
            if getattr(args, flag, None):
                raise UsageError(f"--{flag} goes with --encoder; a run folder knows its own architecture")
        from engine.training.checkpoints import load_run_encoder

        check_run_folder(run)
        enc, cfg, bname = load_run_encoder(run, device)
        return Choice(enc, cfg.method, bname, int(args.image_size or cfg.data.image_size), cfg.seed,
                      f"run:{Path(run).resolve()}", {"run": str(run), "method": cfg.method, "backbone": bname})
    from engine.encoders import load_encoder

    le = load_encoder(spec, args.arch or "", select=args.select or "", image_size=args.image_size, device=device)
    print(le.report, file=sys.stderr)
    return Choice(le.module, le.name, le.arch, le.image_size, 0, f"encoder:{spec}:{args.arch or ''}:{args.select or ''}",
                  {"encoder": str(spec), "arch": le.arch, "backbone": le.arch, "load_report": le.report})


def random_like(choice: Choice, device, seed: int | None = None):
    """A random-init encoder of the same architecture (the baseline)."""
    import torch

    from engine.models import build_backbone

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(choice.seed if seed is None else seed)
        return build_backbone(choice.backbone, choice.image_size).to(device).eval()


def check_init(cfg) -> str:
    """Load a new run's initial weights once into its backbone (a one-line EncoderError when they do not fit or
    are not here); the load report."""
    from engine.encoders import load_init
    from engine.models import build_backbone

    return load_init(build_backbone(cfg.backbone, cfg.data.image_size), cfg)


# -- attention -------------------------------------------------------------------------------------------------
def add_attention_parser(sub, add_common_data) -> None:
    a = sub.add_parser("attention", help="where an encoder looks: a ViT's last-block attention per head (a CNN's "
                       "feature-map norm), one PNG per image and attention.npz",
                       description="For a few images: a ViT's attention of the class token to every patch in its "
                       "last block, per head (a CNN: the norm of its last feature map). Writes DIR/attention.npz "
                       "(attention: images x heads x grid x grid, each map summing to 1; mean; mask; indices; "
                       "labels; images) and one PNG per image: the image, the mean map over it, the image kept at "
                       "--keep of the mean's mass, then each head. The last line is one JSON object.")
    add_source_args(a)
    a.add_argument("--data", required=True, metavar="SPEC", help="the images")
    a.add_argument("--out", required=True, metavar="DIR", help="the folder to write attention.npz and the PNGs to")
    a.add_argument("--images", type=int, default=8, metavar="N", help="how many images, evenly spread over the "
                   "dataset (default 8)")
    a.add_argument("--indices", metavar="LIST", help="which images instead: comma-separated dataset indices")
    a.add_argument("--keep", type=float, default=0.6, metavar="F", help="the PNG's third tile keeps the patches "
                   "that hold this share of the mean map's mass (default 0.6, as DINO's figure)")
    add_common_data(a)


def _indices(args, n: int):
    import numpy as np

    if args.indices:
        try:
            idx = np.array([int(t) for t in str(args.indices).split(",") if t.strip()], dtype=np.int64)
        except ValueError:
            raise UsageError(f"--indices takes comma-separated whole numbers, got {args.indices!r}") from None
        bad = [int(i) for i in idx if not 0 <= i < n]
        if bad or not len(idx):
            raise UsageError(f"--indices must be between 0 and {n - 1} (the dataset has {n} images); got {args.indices}")
        return idx
    if args.images < 1:
        raise UsageError(f"--images must be at least 1, got {args.images}")
    return np.unique(np.linspace(0, n - 1, min(args.images, n)).round().astype(np.int64))


def attention_outputs(encoder, data, idx, device, batch: int = 16) -> dict:
    """The maps of ``data[idx]``: attention (n, heads, gh, gw), mean, images (uint8 n x S x S x 3), labels."""
    import numpy as np

    from engine.encoders.attention import attention_kind, attention_maps, mean_map

    maps = []
    for s in range(0, len(idx), batch):
        x = data.get(idx[s:s + batch]).to(device).float().div(255)
        maps.append(attention_maps(encoder, x).cpu().numpy().astype(np.float32))
    att = np.concatenate(maps)
    images = data.get(idx).cpu().permute(0, 2, 3, 1).contiguous().numpy()
    lab = data.get_labels(idx)
    return {"attention": att, "mean": mean_map(att), "images": images, "indices": np.asarray(idx, np.int64),
            "labels": np.full(len(idx), -1, np.int64) if lab is None else lab.cpu().numpy().astype(np.int64),
            "kind": attention_kind(encoder), "class_names": list(data.class_names or [])}


def cmd_attention(args) -> int:
    import numpy as np

    from engine.data import DataError, load_dataset
    from engine.encoders.attention import attention_figure, save_png, top_mass_mask
    from engine.params import ConfigError
    from engine.training.device import resolve_device

    if not 0 < args.keep <= 1:
        return usage_error(f"--keep is a share of the mass, above 0 and at most 1; got {args.keep}")
    try:
        device = resolve_device(args.device)
        choice = choose_encoder(args, device)
        data = load_dataset(args.data, choice.image_size)
        idx = _indices(args, len(data))
    except (ConfigError, DataError, EncoderError) as exc:
        return usage_error(str(exc))
    out = attention_outputs(choice.encoder, data, idx, device)
    out["mask"] = top_mass_mask(out["mean"], args.keep)
    folder = Path(args.out)
    folder.mkdir(parents=True, exist_ok=True)
    pngs = []
    for k, i in enumerate(out["indices"].tolist()):
        pngs.append(str(save_png(attention_figure(out["images"][k], out["attention"][k], args.keep),
                                 folder / f"image_{i:06d}.png")))
    npz = folder / "attention.npz"
    np.savez(npz, attention=out["attention"], mean=out["mean"], mask=out["mask"], indices=out["indices"],
             labels=out["labels"], images=out["images"], kind=np.array(out["kind"]),
             class_names=np.array(out["class_names"], dtype=str))
    n, heads, gh, gw = out["attention"].shape
    print(f"{n} image(s), {heads} head(s) on a {gh}x{gw} grid ({out['kind']}): {npz}", file=sys.stderr)
    print(json.dumps({**choice.about, "data": args.data, "npz": str(npz), "pngs": pngs, "images": n, "heads": heads,
                      "grid": [gh, gw], "kind": out["kind"]}))
    return 0


__all__ = ["usage_error", "add_source_args", "check_run_folder", "choose_encoder", "Choice", "random_like", "check_init",
           "add_attention_parser", "cmd_attention", "attention_outputs"]
