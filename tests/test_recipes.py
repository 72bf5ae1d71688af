"""The recipes that learn on the data at hand: a method whose defaults fall short of its target on photographs
offers its photo recipe there (and its built-in one on the built-in data), in the catalogue, the Run view and
``main.py train --recipe`` alike."""

from __future__ import annotations

import pytest

from engine.specs import is_photo_spec, recipe_for

CIFAR = "../shared/datasets/cifar10-small/train"


@pytest.mark.parametrize("spec, photo", [
    ("builtin:shapes", False), ("builtin:shapes:500?colours=typical", False), ("shapes:500", False),
    ("builtin:clips", False), ("clips:200", False), ("", False), ("  ", False),
    (CIFAR, True), ("/data/my photos", True), ("torchvision:CIFAR10", True), ("C:\\data\\photos", True),
])
def test_photographs_are_any_data_that_is_not_built_in(spec, photo):
    assert is_photo_spec(spec) is photo


def test_the_photo_recipe_is_offered_on_photographs_and_the_built_in_one_elsewhere():
    built_in = {"overrides": {"data.spec": "builtin:shapes?colours=typical"}, "why": "colour follows the shape"}
    photos = {"overrides": {"minutes": 9.0}, "why": "longer"}
    entry = {"recipe": built_in, "photo_recipe": photos}
    assert recipe_for(entry, CIFAR) == photos
    assert recipe_for(entry, "builtin:shapes:500") == built_in
    assert recipe_for({"recipe": built_in, "photo_recipe": {}}, CIFAR) == built_in  # no photo recipe: the other
    assert recipe_for({"recipe": {}, "photo_recipe": photos}, "builtin:shapes") == {}
    assert recipe_for(None, CIFAR) == {}


def test_every_photo_recipe_makes_a_valid_config_and_says_why():
    """Each method's photo recipe reaches the catalogue; applied to the method's default config on photographs
    it is a valid config; its why is one line that quotes what was measured."""
    from engine.config import RunConfig, default_config
    from engine.methods import method_catalogue

    cat = method_catalogue()
    with_one = [m for m in cat if m["photo_recipe"]]
    assert with_one, "no method offers a recipe on photographs"
    for m in with_one:
        d = default_config(m["name"], data={"spec": CIFAR}).to_dict()
        for path, value in m["photo_recipe"]["overrides"].items():
            assert path != "data.spec", "a photo recipe keeps the user's photographs"
            *parents, leaf = path.split(".")
            cur = d
            for part in parents:
                cur = cur[part]
            assert leaf in cur, (m["name"], path)
            cur[leaf] = value
        RunConfig.from_dict(d)
        why = m["photo_recipe"]["why"]
        assert why and "\n" not in why and len(why) < 300 and any(c.isdigit() for c in why), (m["name"], why)
    assert not next(m for m in cat if m["name"] == "simclr")["photo_recipe"]  # its defaults learn there


def _cfg(argv, capsys):
    from engine.cli import build_parser, config_from_args

    cfg = config_from_args(build_parser().parse_args(["train", *argv])).to_dict()
    return cfg, capsys.readouterr().err


def test_train_recipe_applies_the_recipe_of_the_data_and_keeps_a_longer_budget(capsys):
    from engine.methods import METHODS

    cfg, err = _cfg(["--method", "colorization", "--data", "builtin:shapes:800", "--recipe"], capsys)
    assert cfg["data"]["spec"] == "builtin:shapes:800?colours=typical"  # the count is the user's
    assert cfg["method_options"]["rebalance"] == 0.5 and cfg["minutes"] == 4.0
    assert "recipe of colorization" in err and "colours=typical" in err
    cfg, _ = _cfg(["--method", "colorization", "--data", "builtin:shapes", "--minutes", "30", "--recipe"], capsys)
    assert cfg["minutes"] == 30.0  # a longer budget than the recipe's is kept
    cfg, _ = _cfg(["--method", "colorization", "--data", "builtin:shapes", "--epochs", "3", "--recipe"], capsys)
    assert (cfg["minutes"], cfg["epochs"]) == (4.0, 0)  # the recipe's budget is in minutes
    cfg, _ = _cfg(["--method", "colorization", "--data", "builtin:shapes", "--recipe", "--set", "rebalance=0.2"],
                  capsys)
    assert cfg["method_options"]["rebalance"] == 0.2  # --set has the last word

    photo = next(n for n, c in METHODS.items() if c.photo_recipe)
    cfg, err = _cfg(["--method", photo, "--data", CIFAR, "--recipe"], capsys)
    for path, value in METHODS[photo].photo_recipe.items():
        cur = cfg
        for part in path.split("."):
            cur = cur[part]
        assert cur == value, (photo, path)
    assert cfg["data"]["spec"] == CIFAR and f"recipe of {photo}" in err

    cfg, err = _cfg(["--method", "cpc", "--data", CIFAR, "--recipe"], capsys)  # a recipe counted in epochs
    assert (cfg["epochs"], cfg["minutes"]) == (2, 0.0) and "epochs 2" in err  # no time limit cuts it short
    # and the batch it was measured at: auto would take a larger batch on a GPU, so fewer updates in 2 epochs
    assert cfg["optim"]["batch_size"] == METHODS["cpc"].cpu_batch() == 64 and "optim.batch_size 64" in err
    cfg, _ = _cfg(["--method", "simsiam", "--data", CIFAR, "--recipe"], capsys)
    assert cfg["minutes"] == 6.0 and cfg["optim"]["batch_size"] == 0  # a recipe in minutes leaves auto alone
    cfg, _ = _cfg(["--method", "cpc", "--data", CIFAR, "--epochs", "5", "--recipe"], capsys)
    assert cfg["epochs"] == 5  # more epochs than the recipe's are kept

    cfg, err = _cfg(["--method", "simclr", "--data", "builtin:shapes", "--recipe"], capsys)
    assert cfg["minutes"] == 2.0 and "simclr has no recipe on builtin:shapes" in err and "\n" == err[-1] \
        and err.count("\n") == 1


def test_a_resumed_run_refuses_recipe(tmp_path, capsys):
    from engine.cli import build_parser, resume_changes
    from engine.errors import UsageError

    args = build_parser().parse_args(["train", "--resume", str(tmp_path), "--recipe"])
    with pytest.raises(UsageError, match="--recipe cannot be combined with --resume"):
        resume_changes(args)


def test_methods_long_lists_the_recipes(capsys):
    from engine.cli import main

    assert main(["methods", "--long"]) == 0
    out = capsys.readouterr().out
    assert "recipe on the built-in data (train --recipe): data.spec builtin:shapes?colours=typical" in out
    assert "recipe on photographs (train --recipe): minutes" in out
    assert "measured (kNN vs untrained, the aim): builtin:shapes 2 min" in out  # how the defaults did


def test_methods_long_skips_only_a_malformed_measured_row(monkeypatch, capsys):
    import engine.methods
    from engine.cli import main

    rows = {"simclr": {"shapes": {"data": "builtin:shapes", "minutes": 2, "knn": 0.9, "random_init": 0.5,
                                  "target": 0.15},
                       "photos": {"data": "cifar10-small/train", "minutes": 3, "knn": "n/a", "random_init": 0.4,
                                  "target": 0.05}}}
    monkeypatch.setattr(engine.methods, "measured_rows", lambda: rows)
    assert main(["methods", "--long"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if "measured (kNN vs untrained" in x)
    assert line.endswith("builtin:shapes 2 min +0.400 (+0.15)")  # the readable row, and nothing of the other


def test_a_recipe_short_of_the_aim_is_offered_and_said_to_be_short(capsys):
    """Where nothing measured reaches the aim on photographs but a recipe beats random init there (counting,
    context), the recipe is offered all the same and every place that shows it says that it falls short."""
    from app.run.model import recipe_text
    from engine.cli import main
    from engine.config import default_config
    from engine.methods import method_catalogue
    from engine.specs import measured_text, recipe_changes

    cat = {m["name"]: m for m in method_catalogue()}
    short = [n for n, m in cat.items() if (m["photo_recipe"] or {}).get("short")]
    assert {"counting", "context", "mae"} <= set(short)
    for name in short:
        entry = cat[name]
        said = measured_text(entry, CIFAR)
        assert "beats random init, short of the aim" in said, (name, said)
        assert "train --recipe) does." not in said and "its recipe for this data (Use the recipe that learns" in said
        changes = recipe_changes(entry, default_config(name, data={"spec": CIFAR}).to_dict())
        assert changes and recipe_text(entry, changes, CIFAR).startswith("<b>A recipe that learns, short of the aim.")
        assert recipe_for(entry, "builtin:shapes") == {}  # on the shapes their defaults meet the aim
    full = cat["inpainting"]  # a recipe that reaches the aim says so, without "short"
    assert "; its recipe for this data (Use the recipe that learns, train --recipe) does" in measured_text(full, CIFAR)
    assert "short" not in full["photo_recipe"]

    cfg, err = _cfg(["--method", "counting", "--data", CIFAR, "--recipe"], capsys)
    assert cfg["method_options"]["train_last_block"] is False and (cfg["epochs"], cfg["minutes"]) == (6, 0.0)
    assert cfg["optim"]["batch_size"] == 64 and "(short of the aim: " in err and "+0.049" in err

    assert main(["methods", "--long"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if "recipe on photographs" in x and "patch_input" in x)
    assert line.endswith("(beats random init, short of the aim)")
