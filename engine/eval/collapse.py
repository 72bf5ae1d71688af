"""Is the representation collapsing? Three signs, each with the words that say what it means.

- *Dimensional or complete collapse of the encoder* (any family): the effective rank of the embeddings
  (RankMe, Garrido et al. 2023: ``exp`` of the entropy of the normalised singular values) falls far below
  the random-init encoder's, or the features of all images nearly coincide (the std of the L2-normalised
  embeddings, :func:`engine.eval.metrics.collapse_std`, near 0).
- *Collapse of the method's outputs* (contrastive and tracking methods, which report ``pos_cos`` and
  ``neg_cos``): positives and negatives look the same (both cosines high, no gap), so the loss no longer
  tells images apart, while the encoder's features may still look spread.

:class:`CollapseWatch` reads the snapshots' features and the steps' metrics and says once when a sign
appears (and again if it goes away and comes back).
"""

from __future__ import annotations

import math

import torch

RANK_FLOOR = 2.0  # an effective rank below this is collapse whatever the random init's
RANK_FRACTION = 0.25  # ... and so is one below this fraction of the random-init encoder's
STD_FLOOR = 0.05  # collapse_std below this: the images' features nearly coincide
GAP_FLOOR = 0.02  # pos_cos - neg_cos below this, with neg_cos above NEG_HIGH: the outputs collapsed
NEG_HIGH = 0.9


def effective_rank(features: torch.Tensor) -> float:
    """RankMe: ``exp(H(p))`` with ``p`` the singular values of the ``(N, D)`` embeddings over their sum;
    between 1 (every image on one line) and ``min(N, D)``."""
    f = features.detach().float()
    if f.ndim != 2 or min(f.shape) == 0:
        return 0.0
    s = torch.linalg.svdvals(f)
    total = float(s.sum())
    if not math.isfinite(total) or total <= 0:
        return 0.0
    p = s / total
    p = p[p > 0]
    return float(torch.exp(-(p * p.log()).sum()))


class CollapseWatch:
    """Says when collapse appears: :meth:`features` for each snapshot's embeddings, :meth:`step` for the
    steps' metrics. Each returns the sentence of a new alarm, or None."""

    def __init__(self):
        self.random_rank: float | None = None  # the random-init encoder's (the first snapshot's)
        self.firing: dict[str, bool] = {"encoder": False, "outputs": False}

    def _say(self, key: str, fired: bool, cleared: bool, text: str) -> str | None:
        """``fired``: the sign is there now; ``cleared``: it is clearly gone (a margin above the threshold, so
        a value that hovers at it does not raise the alarm again and again)."""
        new = fired and not self.firing[key]
        if fired:
            self.firing[key] = True
        elif cleared:
            self.firing[key] = False
        return text if new else None

    def features(self, rank: float, spread: float, first: bool = False) -> str | None:
        """A snapshot's effective rank and ``collapse_std``; ``first``: the random-init encoder's."""
        if first or self.random_rank is None:
            self.random_rank = rank
            return None
        floor = max(RANK_FLOOR, RANK_FRACTION * self.random_rank)
        if spread < STD_FLOOR:
            return self._say("encoder", True, False, f"the encoder's features collapsed: all images map to nearly the same "
                                              f"point (spread {spread:.3f}); lower the learning rate or check the "
                                              "method's augmentations")
        return self._say("encoder", rank < floor, rank > 1.5 * floor and spread > 2 * STD_FLOOR,
                         f"the encoder's features collapsed to about {rank:.1f} dimensions (random init: "
                         f"{self.random_rank:.0f}); lower the learning rate, or strengthen the augmentations or the "
                         "method's anti-collapse term")

    def step(self, values: dict) -> str | None:
        """The steps' mean metrics; fires on methods that report ``pos_cos`` and ``neg_cos``."""
        pos, neg = values.get("pos_cos"), values.get("neg_cos")
        if pos is None or neg is None:
            return None
        fired = neg > NEG_HIGH and pos - neg < GAP_FLOOR
        return self._say("outputs", fired, pos - neg > 5 * GAP_FLOOR or neg < NEG_HIGH - 0.1,
                         f"the method's outputs collapsed: positives and negatives look the same (cosine {pos:.2f} "
                         f"against {neg:.2f}), so its loss no longer tells images apart; lower the learning rate or "
                         "change the method's options")


__all__ = ["effective_rank", "CollapseWatch"]
