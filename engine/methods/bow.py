"""Bag-of-visual-words prediction: from a perturbed view, predict the histogram of visual words
of the original image.

Gidaris, Bursuc, Komodakis, Perez, Cord. "Learning Representations by Predicting Bags of Visual
Words", CVPR 2020 (BoWNet), and its online form (OBoW, CVPR 2021). A teacher network describes
every location of the original image by its local feature; the vocabulary is a k-means of those
local features; the image's bag of words is the histogram of its locations' words (sums to one).
The student sees a perturbed view (``views``: crops and flips by default, SimCLR's crops and colour
as an option) and predicts that histogram from its pooled features (cross-entropy): it must infer
which parts are in the image from what is left.

As in BoWNet the teacher is trained first: the first ``teacher_warmup`` steps (300) train the encoder by
rotation prediction (RotNet, one random quarter turn per image), the teacher following it exactly;
then the words begin. A random teacher's words are colours and textures, which on the built-in
shapes are drawn at random: predicting them made the encoder worse than its random init.

As in OBoW the teacher is an exponential moving average of the student and the vocabulary is
updated as training goes (online k-means on the teacher's centred, L2-normalised local features;
a word that no location of the batch chose is re-seeded with a random location of the batch). It
is initialised from the first batch's features.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from engine.augment import preset
from engine.methods.base import StepOutput, bin_counts
from engine.methods.decoder import feature_map, map_shape
from engine.methods.momentum import MomentumMethod
from engine.models.heads import mlp
from engine.params import param
from engine.pretext.base import PretextBatch


@dataclass
class BoWConfig:
    words: int = param(128, "Size of the visual vocabulary (k of the k-means)", min=2, max=65536)
    assign_temp: float = param(0.0, "How a location is assigned to the words: 0 = hard, the nearest word (BoWNet; "
                                    "kNN 0.318 against 0.305 soft after 78 CPU steps), else a softmax over cosine "
                                    "similarities at this temperature (OBoW-like)", min=0.0, max=1.0)
    vocab_momentum: float = param(0.99, "EMA rate of the online k-means update of the words (1: the words stay "
                                        "where the first batch put them)", min=0.0, max=1.0)
    momentum: float = param(0.99, "Base momentum of the teacher (raised to 1 along a cosine; 1: the teacher stays "
                                  "the random init and the vocabulary its k-means)", min=0.0, max=1.0)
    views: str = param("light", "Augmentation recipe of the student's perturbed view", choices=("simclr", "byol",
                                                                                                 "light"))
    head_hidden: int = param(512, "Hidden width of the student's histogram predictor", min=8, max=16384)
    teacher_gray: bool = param(False, "The teacher describes the grey image (its words cannot be colours)")
    teacher_warmup: int = param(300, "Steps of rotation prediction (RotNet, one random quarter turn per image) that "
                                   "train the encoder before it becomes the teacher whose words the student "
                                   "predicts (BoWNet's teacher is a RotNet); 0: the teacher starts as the random "
                                   "init", min=0, max=1000000)


def palette(k: int) -> torch.Tensor:
    """``(k, 3)`` distinct-looking colours in [0, 1] for drawing word maps (fixed)."""
    g = torch.Generator().manual_seed(1234)
    return 0.25 + 0.75 * torch.rand(k, 3, generator=g)


def histogram_image(h: torch.Tensor, colors: torch.Tensor, height: int = 40, bar: int = 2) -> torch.Tensor:
    """A bar chart ``(3, height, K * bar)`` in [0, 1] of a histogram ``(K,)`` (scaled to its maximum)."""
    k = h.shape[0]
    top = (h / h.max().clamp(min=1e-8) * (height - 1)).round().long()
    rows = torch.arange(height).view(height, 1)
    on = rows >= (height - 1 - top).view(1, k)  # (height, K)
    img = torch.where(on.unsqueeze(0), colors.t().view(3, 1, k), torch.full((3, 1, 1), 0.08))
    return img.repeat_interleave(bar, dim=2)


class BoW(MomentumMethod):
    name = "bow"
    title = "BoW prediction (bag of visual words)"
    summary = "Distillation: predict the histogram of a teacher's visual words in the original image from a perturbed view."
    description = ("Learns which parts and textures an image contains, whatever the crop or colour: the words are "
                   "local, the target is their histogram, so the student must infer unseen parts from the "
                   "rest (contextual reasoning). It depends on the teacher: a random teacher's words are low-level "
                   "(colours, edges), so it starts from one trained by rotation prediction, and small images give few "
                   "locations per histogram; words that no image uses "
                   "are wasted and a collapsing teacher makes every histogram alike (watch the vocabulary usage).")
    needs = ("A teacher that already knows shapes: the first 300 steps train the encoder by rotation prediction "
             "(BoWNet's teacher is a RotNet), then it becomes the teacher and the student predicts its words from a "
             "lightly cropped view. Measured on the built-in shapes (2000 images, seed 0, batch 128, random init "
             "0.445) after 600 steps: kNN 0.897 with the defaults, 0.918 with rotation prediction alone (on these "
             "small images the words do not add to the warm-up's rotations yet); a 100-step warm-up 0.452 (0.548 "
             "after 300 steps: too young a teacher's words wear the features away); a random teacher 0.308 after "
             "300 steps (its words are colours and background textures, drawn at random there). On the default "
             "6000 shapes 0.921 against 0.561 for random init after 644 steps (+0.360). On cifar10-small it learns, "
             "given time: 0.430 against 0.387 (+0.043, 1,635 steps) in the 3-minute table of 2026-12-06, short of "
             "+0.05; in a run planned for 3,200 steps (batch 128, seed 0, one thread) kNN on val was 0.407 after "
             "624 steps, passed +0.05 after about 1,400 (0.447 after 1,560), peaked at 0.467 after 2,496 and ended "
             "at 0.452 (3,276). Its recipe on photographs, 6 minutes, gave 0.459 (+0.072, 5,091 steps) on an idle "
             "2-core CPU; on a slower day 6 minutes make about the 3,276 steps of the run above (+0.065).")
    photo_recipe = {"minutes": 6.0}
    photo_recipe_why = ("BoW's words need time on photographs: on cifar10-small 3 minutes gave kNN +0.043 over random "
                        "init, 6 minutes on an idle 2-core CPU +0.072 (0.459 against 0.387, 5,091 steps).")
    paper = "Gidaris et al., Learning Representations by Predicting Bags of Visual Words, CVPR 2020"
    family = "distillation"
    backbone_kind = "any"
    preview_kind = "bow"
    Config = BoWConfig

    @classmethod
    def run_defaults(cls) -> dict:
        return {"optim": {"optimizer": "adamw", "lr": 1e-3, "weight_decay": 1e-4, "batch_size": 128}}

    def __init__(self, cfg, backbone, info):
        super().__init__(cfg, backbone, info)
        ch, _ = map_shape(backbone, info.image_size)
        self.view = preset(cfg.views, info.image_size)[0]
        self.head = mlp([(backbone.feature_dim, cfg.head_hidden, True, True), (cfg.head_hidden, cfg.words, False, False)])
        self.add_momentum_targets(teacher_backbone="backbone")  # its momentum always rises along a cosine
        self.register_buffer("vocab", torch.zeros(cfg.words, ch))
        self.register_buffer("usage", torch.full((cfg.words,), 1.0 / cfg.words))
        self.register_buffer("vocab_ready", torch.zeros((), dtype=torch.bool))
        # running mean of the teacher's local features, taken off before normalising: the features of a
        # (young) network all point much the same way, and centring spreads them over the words
        self.register_buffer("feat_mean", torch.zeros(ch))
        if cfg.teacher_warmup > 0:
            self.rot_head = torch.nn.Linear(backbone.feature_dim, 4)
        self.register_buffer("warm_steps", torch.zeros((), dtype=torch.long))
        self._warm_seen: int | None = None  # host copy of warm_steps (no sync per step)
        self._last_warm = False

    # -- the teacher's warm-up (BoWNet: the teacher is a RotNet) -------------------------------------
    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        self._ready_seen = False  # the loaded state says
        self._warm_seen = None
        if prefix + "warm_steps" not in state_dict and prefix + "vocab" in state_dict:
            # a run saved before the warm-up existed trained its words from the start: it stays so
            state_dict[prefix + "warm_steps"] = torch.tensor(self.cfg.teacher_warmup)
            if self.cfg.teacher_warmup > 0:
                for k, v in self.rot_head.state_dict().items():
                    state_dict.setdefault(prefix + "rot_head." + k, v.clone())
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def warming_up(self) -> bool:
        """Whether the next step is still one of the teacher's rotation warm-up steps."""
        if self._warm_seen is None:
            self._warm_seen = int(self.warm_steps)
        return self._warm_seen < self.cfg.teacher_warmup

    def rotation_step(self, x, g):
        from engine.augment import augment
        from engine.pretext.rotation import rotation

        batch = rotation(augment(x, self.view, g), g, all_four=False)
        logits = self.rot_head(self.backbone(batch.inputs)).float()
        loss = F.cross_entropy(logits, batch.targets)
        self.warm_steps.add_(1)
        self._warm_seen += 1
        acc = (logits.argmax(1) == batch.targets).float().mean()
        return StepOutput(loss, {"rotation_acc": acc})

    def after_step(self, progress: float) -> None:
        if self._last_warm:  # the teacher is the warm-up's encoder itself until the words begin
            from engine.methods.momentum import ema_update

            for online, target in self.momentum_pairs:
                ema_update(target, online, 0.0)
            return
        super().after_step(progress)

    # -- the teacher's words -----------------------------------------------------------------------
    @torch.no_grad()
    def local_features(self, x: torch.Tensor, with_mean: bool = False):
        """The teacher's centred, L2-normalised local features ``(B, h, w, C)`` (and, ``with_mean``, the
        batch mean of the uncentred ones)."""
        was = self.teacher_backbone.training
        self.teacher_backbone.eval()
        try:
            f = feature_map(self.teacher_backbone, x).float()
        finally:
            self.teacher_backbone.train(was)
        f = f.permute(0, 2, 3, 1)
        raw_mean = f.reshape(-1, f.shape[-1]).mean(0)
        out = F.normalize(f - torch.where(self.vocab_ready, self.feat_mean, raw_mean), dim=-1)  # no host sync
        return (out, raw_mean) if with_mean else out

    @staticmethod
    def initial_vocab(locals_: torch.Tensor, k: int) -> torch.Tensor:
        """``k`` words from evenly spaced local features (deterministic; repeats when there are fewer)."""
        flat = locals_.reshape(-1, locals_.shape[-1])
        idx = (torch.arange(k, device=flat.device) * flat.shape[0]) // k if flat.shape[0] >= k else \
            torch.arange(k, device=flat.device) % flat.shape[0]
        return flat[idx].clone()

    def current_vocab(self, locals_: torch.Tensor) -> torch.Tensor:
        if self._ready():
            return self.vocab
        return self.initial_vocab(locals_, self.cfg.words)

    def _ready(self) -> bool:
        """The vocabulary has been initialised (once seen, it stays so: no host sync per step after)."""
        if not getattr(self, "_ready_seen", False):
            self._ready_seen = bool(self.vocab_ready)
        return self._ready_seen

    def assign(self, locals_: torch.Tensor, vocab: torch.Tensor) -> torch.Tensor:
        """Assignments ``(B, h, w, K)`` of every location to the words (rows sum to 1)."""
        sims = locals_ @ vocab.t().to(locals_.dtype)
        if self.cfg.assign_temp <= 0:
            return F.one_hot(sims.argmax(-1), vocab.shape[0]).float()
        return torch.softmax(sims / self.cfg.assign_temp, dim=-1)

    def make_batch(self, x, g, preview=False):
        """Inputs: the student's perturbed view; targets ``(B, K)``: the bag of words of the original
        image (sums to one). Meta: the teacher's ``word_map`` ``(B, h, w)`` and its local features."""
        from engine.augment import augment, gray

        original = x
        seen = gray(x).expand_as(x) if self.cfg.teacher_gray else x
        locals_, raw_mean = self.local_features(seen, with_mean=True)
        vocab = self.current_vocab(locals_)
        a = self.assign(locals_, vocab)
        hist = a.mean(dim=(1, 2))
        student = augment(x, self.view, g)
        return PretextBatch(student, hist, {"word_map": a.argmax(-1), "locals": locals_, "original": original,
                                            "vocab": vocab, "raw_mean": raw_mean})

    @torch.no_grad()
    def update_vocab(self, locals_: torch.Tensor, g, raw_mean: torch.Tensor | None = None) -> None:
        """One online k-means step: every word moves towards the mean of the locations nearest to it;
        words no location chose are re-seeded with random locations of this batch. ``raw_mean``: the
        batch mean of the uncentred features (the centre follows it). Over several processes the step
        follows the global batch (every process's locations, the mean of their centres, the first
        process's random picks), so every process keeps the same vocabulary."""
        flat = self.group.cat_nograd(locals_.reshape(-1, locals_.shape[-1]))
        if raw_mean is not None:
            raw_mean = self.group.mean(raw_mean)
        if not self._ready():
            self.vocab.copy_(self.initial_vocab(flat, self.cfg.words))
            if raw_mean is not None:
                self.feat_mean.copy_(raw_mean)
            self.vocab_ready.fill_(True)
            return
        if self.cfg.vocab_momentum >= 1:
            return
        if raw_mean is not None:
            self.feat_mean.mul_(0.99).add_(raw_mean, alpha=0.01)
        k = self.cfg.words
        near = (flat @ self.vocab.t()).argmax(1)
        counts = bin_counts(near, k)
        sums = torch.zeros_like(self.vocab).index_add_(0, near, flat)
        used = counts > 0
        means = sums / counts.clamp(min=1).unsqueeze(1)
        m = self.cfg.vocab_momentum
        moved = F.normalize(m * self.vocab + (1 - m) * means, dim=1)
        self.vocab.copy_(torch.where(used.unsqueeze(1), moved, self.vocab))
        self.usage.mul_(0.99).add_(counts / counts.sum(), alpha=0.01)
        # a word no location of this batch chose is re-seeded at once (online k-means otherwise lets a few
        # central words win everything: 3 of 128 words in use after 78 steps, with a frozen teacher too)
        dead = ~used
        if flat.device.type != "cpu":  # no host sync: a random location for every word, kept where it is dead
            pick = self.group.cat_nograd(torch.randint(0, flat.shape[0], (k,), generator=g, device=flat.device))[:k]
            self.vocab.copy_(torch.where(dead.unsqueeze(1), flat[pick], self.vocab))
            self.usage.masked_fill_(dead, 1.0 / k)
            return
        n_dead = int(dead.sum())
        if n_dead:
            pick = torch.randint(0, flat.shape[0], (n_dead,), generator=g, device=flat.device)
            self.vocab[dead] = flat[self.group.cat_nograd(pick)[:n_dead]]
            self.usage[dead] = 1.0 / k

    def training_step(self, x, labels, g):
        self._last_warm = self.warming_up()
        if self._last_warm:
            return self.rotation_step(x, g)
        batch = self.make_batch(x, g)
        logits = self.head(self.backbone(batch.inputs)).float()
        target = batch.targets.float()
        loss = -(target * F.log_softmax(logits, 1)).sum(1).mean()
        with torch.no_grad():
            ent = -(target * target.clamp(min=1e-12).log()).sum(1).mean()
            words_used = (bin_counts(batch.meta["word_map"].flatten(), self.cfg.words) > 0).float().sum()
        self.update_vocab(batch.meta["locals"], g, batch.meta["raw_mean"])
        return StepOutput(loss, {"target_entropy": ent, "words_used": words_used})

    @torch.no_grad()
    def preview_rows(self, x, g):
        from engine.pretext.tiles import PreviewRow, PreviewTile, to_uint8

        batch = self.make_batch(x, g, preview=True)
        k = self.cfg.words
        colors = palette(k)
        wm = batch.meta["word_map"].cpu()
        size = x.shape[-2:]
        word_rgb = colors[wm].permute(0, 3, 1, 2)  # (B, 3, h, w)
        word_rgb = F.interpolate(word_rgb, size=size, mode="nearest")
        overlay = to_uint8(0.45 * batch.meta["original"].cpu().float() + 0.55 * word_rgb)
        orig, student = to_uint8(batch.meta["original"]), to_uint8(batch.inputs)
        hist = batch.targets.cpu().float()
        note = "" if bool(self.vocab_ready) else " (a first vocabulary, from these images)"
        rows = []
        for i in range(x.shape[0]):
            top = torch.topk(hist[i], min(3, k))
            tops = ", ".join(f"#{int(w)} {float(v):.2f}" for v, w in zip(top.values, top.indices))
            himg = to_uint8(histogram_image(hist[i], colors).unsqueeze(0))[0]
            h, w = wm.shape[1:]
            rows.append(PreviewRow(f"image {i + 1}", [
                PreviewTile(orig[i], "original (the teacher sees it grey)" if self.cfg.teacher_gray
                            else "original (the teacher's input)"),
                PreviewTile(overlay[i], f"word map: {h}x{w} places, {len(torch.unique(wm[i]))} words{note}",
                            grid=h if h == w else 0),
                PreviewTile(himg, f"target: histogram over {k} words; top {tops}"),
                PreviewTile(student[i], "the student's perturbed view (predicts the histogram)"),
            ]))
        return rows
