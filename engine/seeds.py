"""Every fixed seed of the engine, in one place.

A run is reproducible because each random draw comes from a seed derived from the run's own
``cfg.seed`` (or a fixed constant) by one of the rules below. The training session, the analysis
worker and the evaluation protocol all draw through these names, so the indices of a run's
embedding snapshots mean the same images everywhere.

numpy only at import time (the GUI process imports this without paying for torch).
"""

from __future__ import annotations

import numpy as np

# the order in which a dataset is read (and the sample of ``max_images``) does not depend on the run
DATASET_SEED = 0
# the hold-out split of a labelled training set into train / evaluation images
HOLDOUT_SPLIT_SEED = 1234
# labels only in the evaluation set: its split into a kNN bank and a query half
BANK_SPLIT_SEED = 99
# offsets from ``cfg.seed``: the fixed embedding + reconstruction sample, the online kNN sample
SNAPSHOT_SAMPLE_OFFSET = 5
MONITOR_SAMPLE_OFFSET = 11
# the analysis worker's fixed samples (readout bank / test, pretext scoring)
READOUT_BANK_SEED = 11
READOUT_TEST_SEED = 12
PRETEXT_SAMPLE_SEED = 21
# the two views of a few sample images each snapshot of a two-view method encodes (the same at every snapshot)
PAIR_VIEWS_SEED = 2024
# number of images shown as reconstructions during training
RECONSTRUCTION_SAMPLES = 8


def snapshot_rng(seed: int) -> np.random.Generator:
    """The generator of a run's fixed snapshot sample: embedding indices first, then reconstructions."""
    return np.random.default_rng(seed + SNAPSHOT_SAMPLE_OFFSET)


def monitor_rng(seed: int) -> np.random.Generator:
    """The generator of the online kNN monitor's bank and query sample (the same at every epoch)."""
    return np.random.default_rng(seed + MONITOR_SAMPLE_OFFSET)


def step_generator(seed: int, step: int, rank: int, device):
    """The torch generator of every random draw of one training step (augmentations, masks, ...)."""
    import torch

    g = torch.Generator(device=device if device.type in ("cuda", "mps") else "cpu")
    g.manual_seed((seed * 1_000_003 + step * 7919 + rank * 104_729 + 12345) % (2**63 - 1))
    return g


def epoch_order(n: int, seed: int, epoch: int):
    """The order of the ``n`` training images in ``epoch`` (a torch permutation)."""
    import torch

    g = torch.Generator().manual_seed((seed * 1_000_003 + epoch * 31337 + 7) % (2**63 - 1))
    return torch.randperm(n, generator=g)


__all__ = ["DATASET_SEED", "HOLDOUT_SPLIT_SEED", "BANK_SPLIT_SEED", "SNAPSHOT_SAMPLE_OFFSET",
           "MONITOR_SAMPLE_OFFSET", "READOUT_BANK_SEED", "READOUT_TEST_SEED", "PRETEXT_SAMPLE_SEED",
           "RECONSTRUCTION_SAMPLES", "snapshot_rng", "monitor_rng", "step_generator", "epoch_order"]
