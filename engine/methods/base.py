"""The method base class: what every SSL method shares.

A method owns its pretext/augmentation recipe (``make_batch``), its loss (``training_step``) and
its extra modules (heads, momentum encoders, decoders). The base class owns the shared work:
the encoder, parameter groups, the losses that couple samples bound to the processes a batch spans
(``self.losses``) and the preview, which calls the very same ``make_batch`` that training calls.
Two bases build on it: :class:`engine.methods.views.TwoViewMethod` (two augmented views of every
image) and :class:`engine.methods.momentum.MomentumMethod` (momentum/EMA target networks).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn as nn

from engine.dist import Group
from engine.methods.losses import CoupledLosses
from engine.pretext.base import PretextBatch

DEFAULT_CPU_BATCH = 256  # a method that names no batch of its own


@dataclass
class DataInfo:
    image_size: int
    num_classes: int = 0  # 0: unlabeled


@dataclass
class StepOutput:
    loss: torch.Tensor
    metrics: dict  # python floats or 0-d tensors, averaged by the session


@dataclass
class NoOptions:
    """This method has no options of its own."""


class Method(nn.Module):
    name: ClassVar[str] = ""
    title: ClassVar[str] = ""
    summary: ClassVar[str] = ""  # one line for the method picker
    description: ClassVar[str] = ""  # what it learns and where it fails
    # what it needs to beat its random-init encoder and how long, as measured on the built-in data and the
    # real images (steps at the method's defaults); the window shows it after the description, before Start
    needs: ClassVar[str] = ""
    # the recipe that learns, for a method whose defaults cannot meet its target on some data: config overrides
    # by dotted path ({"data.spec": "builtin:shapes?colours=typical"}, {"minutes": 10.0}) and one line saying
    # why; the Run view offers it before Start while the config differs from it (exported by method_catalogue)
    recipe: ClassVar[dict] = {}
    recipe_why: ClassVar[str] = ""
    # the recipe on photographs (data that is not built in: a folder of images, a torchvision set), where the
    # method's defaults fall short of its target there (cifar10-small, 3 minutes on a CPU); offered in place of
    # ``recipe`` when the run's data is photographs (engine.methods.recipe_for)
    photo_recipe: ClassVar[dict] = {}
    photo_recipe_why: ClassVar[str] = ""
    # a photo recipe that beats the untrained encoder there but falls short of the target, where nothing measured
    # on a CPU reaches it: offered all the same (a run that shows the method learning), and said to be short
    photo_recipe_short: ClassVar[bool] = False
    paper: ClassVar[str] = ""
    family: ClassVar[str] = ""  # transformation, reconstruction, contrastive, distillation, reference, video
    needs_labels: ClassVar[bool] = False
    trains: ClassVar[bool] = True
    backbone_kind: ClassVar[str] = "cnn"  # "cnn", "vit" or "any": which backbones fit
    preview_kind: ClassVar[str] = "views"  # how the preview panel draws make_batch's output
    bound: ClassVar[str] = ""  # "upper" / "lower": the evaluation protocol's reference encoder it trains
    # what training_step and make_batch take: "images" (B, 3, H, W) or "clips" (B, T, C, H, W), the
    # batches of a clip dataset (engine.data.clips.ClipData); evaluation always embeds single frames
    input_kind: ClassVar[str] = "images"
    # what the method calls on its backbone beyond pooled features (attribute names), with why: a backbone
    # without them (a torchvision/timm model has no forward_tokens) is refused before training, in one line
    backbone_needs: ClassVar[tuple] = ()
    backbone_needs_why: ClassVar[str] = ""
    Config: ClassVar[type] = NoOptions
    # captions of the inspector's (original, model input, output) triplets from reconstruct(); () = the defaults
    reconstruct_captions: ClassVar[tuple] = ()
    # the batch that ``optim.batch_size`` auto aims at on a GPU before sizing it to the GPU's memory (on a CPU
    # auto takes the batch of ``run_defaults``); see engine.training.batch
    gpu_batch: ClassVar[int] = 512

    def __init__(self, cfg, backbone: nn.Module, info: DataInfo):
        super().__init__()
        self.cfg = cfg
        self.backbone = backbone
        self.info = info
        # the losses that couple samples (engine.methods.losses.COUPLED), bound to the processes the batch
        # spans: every process of the run until the session sets the group from ``gather`` (``set_group``)
        self.losses = CoupledLosses(Group(gather=True))
        check = getattr(type(self), "check_backbone", None)
        if check:
            check(backbone)
        kind = getattr(backbone, "kind", "cnn")
        if self.backbone_kind != "any" and kind != self.backbone_kind:
            from engine.models import BACKBONES
            from engine.params import ConfigError

            fits = [n for n in BACKBONES if n.startswith("vit")] if self.backbone_kind == "vit" else \
                [n for n in BACKBONES if not n.startswith("vit")]
            raise ConfigError("backbone", f"{self.name} needs a {'ViT' if self.backbone_kind == 'vit' else 'CNN'} "
                                          f"backbone ({', '.join(fits)} or auto), not {type(backbone).__name__}")
        problem = type(self).backbone_problem(backbone)
        if problem:
            from engine.params import ConfigError

            raise ConfigError("backbone", problem)

    @classmethod
    def backbone_problem(cls, backbone: nn.Module, name: str = "") -> str | None:
        """Why ``backbone`` cannot serve this method (it lacks one of ``backbone_needs``), or None."""
        lacking = [n for n in cls.backbone_needs if not hasattr(backbone, n)]
        if not lacking:
            return None
        what = name or getattr(backbone, "arch", "") or type(backbone).__name__
        return (f"{cls.name} needs {cls.backbone_needs_why or ', '.join(lacking)}, which {what} does not give; "
                "choose a workbench backbone that does, or another method")

    @classmethod
    def cpu_batch(cls) -> int:
        """The batch the method's defaults and recipes were measured at on a CPU (what batch size auto takes
        there)."""
        return int((cls.run_defaults().get("optim") or {}).get("batch_size") or DEFAULT_CPU_BATCH)

    @classmethod
    def recipes(cls) -> dict:
        """The method's recipes as the catalogue has them: ``recipe`` and ``photo_recipe``, each
        ``{"overrides": ..., "why": ...}`` or {} for none (``engine.specs.recipe_for`` picks one for a dataset),
        with ``"short": True`` for a photo recipe that beats the untrained encoder short of the target.
        A recipe that counts epochs also names the batch it was measured at (the method's batch on a CPU): the
        number of updates is what it needs, and auto would take a larger batch on a GPU, so fewer of them."""
        def entry(overrides: dict, why: str, short: bool = False) -> dict:
            if not overrides:
                return {}
            overrides = dict(overrides)
            if "epochs" in overrides:
                overrides.setdefault("optim.batch_size", cls.cpu_batch())
            return {"overrides": overrides, "why": why, **({"short": True} if short else {})}

        return {"recipe": entry(cls.recipe, cls.recipe_why),
                "photo_recipe": entry(cls.photo_recipe, cls.photo_recipe_why, cls.photo_recipe_short)}

    @property
    def group(self) -> Group:
        """The processes a batch spans (engine.dist): what ``self.losses`` are bound to, and what a state
        that follows the batch (a queue of keys, a centre) gathers over."""
        return self.losses.group

    def set_group(self, group: Group) -> None:
        """Compute coupled losses over ``group`` (this method and the methods inside it)."""
        for m in self.modules():
            if isinstance(m, Method):
                m.losses = CoupledLosses(group)

    # -- recipe ------------------------------------------------------------------------------
    @classmethod
    def run_defaults(cls) -> dict:
        """Recommended run settings (optimiser, batch size) for this method, by section. The batch size is the
        one its recipe was measured at on a CPU: ``optim.batch_size`` auto takes it there."""
        return {}

    def make_batch(self, x: torch.Tensor, g: torch.Generator | None, preview: bool = False) -> PretextBatch:
        """Inputs and targets from a float batch in [0, 1]. Training and previews both call this;
        ``preview=True`` only adds metadata for drawing (the tensors are the same)."""
        raise NotImplementedError

    def training_step(self, x: torch.Tensor, labels: torch.Tensor | None, g) -> StepOutput:
        raise NotImplementedError

    def after_step(self, progress: float) -> None:
        """Called after each optimiser step with the run's progress (0..1): EMA updates go here."""

    @torch.no_grad()
    def preview_rows(self, x: torch.Tensor, g) -> list:
        """Rows of :class:`engine.preview.PreviewTile` drawn from ``make_batch``'s output.
        The default draws the original next to each view (contrastive and reference methods)."""
        from engine.pretext.tiles import views_rows

        return views_rows(x, self.make_batch(x, g, preview=True))

    # -- evaluation ----------------------------------------------------------------------------
    @property
    def encoder(self) -> nn.Module:
        return self.backbone

    def view_pair(self, x: torch.Tensor, g) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Two views of every image of ``x`` (float in [0, 1]) drawn with the method's own recipe, the pair its
        loss pulls together (the map's attract/repel figure); None for methods without two views."""
        return None

    def reconstruct(self, x: torch.Tensor, g) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(what the model saw, its reconstruction) for reconstruction methods; None otherwise."""
        return None

    def pretext_errors(self, x: torch.Tensor, labels, class_names: list[str] | None, seed: int = 0,
                       max_examples: int = 24) -> dict | None:
        """Where the trained pretext classifier errs on clean pretext batches of ``x`` (float in [0, 1] on
        the method's device; ``labels``: numpy image classes or None). None for methods without a
        classification pretext to inspect. The dict's keys are described in
        :mod:`engine.methods.pretext_errors` (a view draws it without knowing the method)."""
        return None

    def param_groups(self, weight_decay: float) -> list[dict]:
        """Biases and norm weights get no weight decay (and no LARS adaptation)."""
        decay, no_decay = [], []
        for name, p in self.named_parameters():
            if not p.requires_grad:
                continue
            if p.ndim <= 1 or name.endswith(".bias") or "pos_embed" in name or "token" in name:
                no_decay.append(p)
            else:
                decay.append(p)
        return [{"params": decay, "weight_decay": weight_decay},
                {"params": no_decay, "weight_decay": 0.0, "lars_exclude": True}]


def bin_counts(idx: torch.Tensor, n: int) -> torch.Tensor:
    """How often each of ``0..n-1`` occurs in ``idx``, as floats: ``torch.bincount`` on the CPU; elsewhere
    a scatter-add, which (unlike bincount on a GPU) does not read the largest index back to the host."""
    if idx.device.type == "cpu":
        return torch.bincount(idx, minlength=n).float()
    return torch.zeros(n, device=idx.device).index_add_(0, idx, torch.ones(idx.shape, device=idx.device))


@torch.no_grad()
def rebalance_weights(prior: torch.Tensor, hard: torch.Tensor, lam: float) -> torch.Tensor:
    """Colorization's class rebalancing (Zhang et al. 2016): update the running frequency ``prior`` of
    every colour bin in place with this batch's bins ``hard``, and give each pixel the weight
    ``1 / ((1 - lam) * prior + lam / Q)`` of its bin, scaled so that the expected weight under the prior is 1."""
    n = prior.numel()
    freq = bin_counts(hard.flatten(), n)
    prior.mul_(0.99).add_(freq / freq.sum(), alpha=0.01)
    w = 1.0 / ((1 - lam) * prior + lam / n)
    w = w / (w * prior).sum()
    return w[hard]


def train_last_block_option():
    """The ``train_last_block`` option of a pretext whose task would specialise the encoder's last block (context,
    counting): off, the method calls ``engine.models.backbones.keep_last_block`` on its encoder."""
    from engine.params import param

    return param(True, "Train the encoder's last block too. Off, it stays as initialised and the blocks below learn "
                       "through it: on photographs the pretext otherwise specialises that block to its own task and "
                       "kNN loses what the blocks below learnt (see what it needs)")
