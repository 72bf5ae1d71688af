"""Every pretext family learns: a short run of one method per family on the built-in data moves kNN
on the data's test split above the random-init encoder's (each method with its own defaults and the
data's recipe, as the command line and the window take them; only the batch and the step count are
small). One run per family; the random init of the same backbone is scored once per data set."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from engine.config import default_config
from engine.session import Session

pytestmark = pytest.mark.usefixtures("two_threads")

SHAPES = "builtin:shapes:1024"
BATCH = 64

# family -> (method, data, steps, margin over random init[, method options]). Measured with two fixed threads
# (seed 0, batch 64, 1024 shapes, random init 0.348): rotnet 0.520, simclr 0.505, vicreg 0.608 after 96 steps;
# simsiam 0.436 / 0.598 after 256 / 320 steps (0.554 on 2026-12-07, 34 s); bow 0.529 after 256 (14 s; seeds 1 and 2
# 0.529 and 0.564 against 0.378), so distillation is tested with BoW, in 2.5 times less time; multitask 0.422 after 192; denoising 0.431 after 384 (0.31
# after 256 on one thread; inpainting 0.407, superres 0.343 after 384); ssgan (its small generator,
# gen_width 16 and z_dim 32) 0.446 after 128 steps (the earlier, wider one on one thread: 0.412 after 256). The
# margins are about half of the gain at the tested steps, so the tests say "learns", not "scores exactly this".
# The suite runs the tests on two processes on a 2-core machine, each with one thread (tests/conftest.py); with
# one fixed thread (2026-12-07, random init 0.348): rotnet 0.544, simclr 0.510, vicreg 0.588, bow 0.544,
# multitask 0.446, denoising 0.456, ssgan 0.436, each past its margin. Since denoising's noise is smooth (noise_grid
# 4) it learns sooner, so it is tested after 256 steps, and SSGAN after 96 (2026-12-07, one thread / two):
# denoising 0.392 after 192, 0.431 / 0.451 after 256, 0.510 after 384; ssgan 0.466 / 0.471 after 96; multitask
# 0.402 after 128 (too close to its margin: it stays at 192).
FAMILIES = {
    "transformation": ("rotnet", SHAPES, 96, 0.10),
    "contrastive": ("simclr", SHAPES, 96, 0.08),
    "redundancy reduction": ("vicreg", SHAPES, 96, 0.10),
    "distillation": ("bow", SHAPES, 256, 0.09),
    "multi-task": ("multitask", SHAPES, 192, 0.035),
    "reconstruction": ("denoising", SHAPES, 256, 0.045),
    "generative": ("ssgan", SHAPES, 96, 0.06),
}
# Families whose first few hundred steps do not yet beat random init on one core (each method's own text
# says how long it needs).
NOT_YET: set[str] = set()
# Families whose learning test needs its own data and lives in its own file.
ELSEWHERE = {"video": "test_family_learning_video.py"}


def run_knn(method: str, spec: str, steps: int, root: Path, batch: int = BATCH, count: int = 0, **options) -> dict:
    """kNN top-1 on ``spec``'s test split after ``steps`` steps of ``method`` (its defaults, batch ``batch``;
    ``count``: the training examples ``spec`` holds, when known)."""
    from engine.data import load_dataset

    n = count or len(load_dataset(spec, 32))
    per_epoch = max(1, n // batch)
    cfg = default_config(method, epochs=max(1, math.ceil(steps / per_epoch)), minutes=0.0, device="cpu", seed=0,
                         runs_root=str(root), checkpoint_every_minutes=0.0,
                         data={"spec": spec, "image_size": 32},
                         optim={"batch_size": batch},
                         eval={"knn_every_epochs": 0, "embed_every_epochs": 0, "final_eval": True,
                               "linear_probe_epochs": 0})
    cfg.method_options.update(options)
    summary = Session(cfg, lambda msg: None).run()
    assert summary.get("reason") != "failed", summary
    return json.loads((Path(summary["run_dir"]) / "results.json").read_text())


@pytest.fixture(scope="module")
def random_init(tmp_path_factory):
    """The untrained encoder's kNN per data set (the lower bound every family must beat)."""
    root = tmp_path_factory.mktemp("random-init")
    cache: dict = {}

    def score(spec: str) -> float:
        if spec not in cache:
            cache[spec] = run_knn("random_init", spec, 0, root)["knn_top1"]
        return cache[spec]

    return score


@pytest.mark.slow
@pytest.mark.parametrize("family", list(FAMILIES))
def test_a_short_run_of_the_family_beats_random_init(family, random_init, tmp_path):
    method, spec, steps, margin, *options = FAMILIES[family]
    from engine.methods import METHODS

    assert METHODS[method].family == family
    res = run_knn(method, spec, steps, tmp_path, **(options[0] if options else {}))
    base = random_init(spec)
    assert res["step"] >= steps
    assert res["knn_top1"] >= base + margin, (
        f"{method} ({family}) after {res['step']} steps: kNN {res['knn_top1']:.3f}, random init {base:.3f}")


def test_every_training_family_has_a_learning_test():
    """A new family joins the catalogue with a run that shows it learning (or is named here as untested)."""
    from engine.methods import METHODS

    families = {c.family for c in METHODS.values() if c.trains and not c.needs_labels}
    assert families <= set(FAMILIES) | NOT_YET | set(ELSEWHERE), sorted(families - set(FAMILIES) - NOT_YET - set(ELSEWHERE))
    for family, name in ELSEWHERE.items():
        assert "def test_a_short_run" in (Path(__file__).parent / name).read_text(), (family, name)


def test_every_method_says_what_it_needs_and_the_window_shows_it():
    """Before Start the window shows the catalogue's description: it ends with what the method needs to beat
    its random-init encoder, with the numbers measured (kNN against random init, after how many steps)."""
    import re

    from engine.methods import METHODS, method_catalogue

    shown = {c["name"]: c for c in method_catalogue()}
    for name, cls in METHODS.items():
        if not cls.trains or cls.needs_labels:
            continue
        assert cls.needs, f"{name} does not say what it needs"
        assert re.search(r"random.init", cls.needs) and re.search(r"\d+ steps|minutes", cls.needs), name
        assert shown[name]["description"].endswith(cls.needs) and shown[name]["needs"] == cls.needs
