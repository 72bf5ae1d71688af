"""What a dataset recommends to the methods trained on it: the built-in shapes' strong colour jitter."""

import shlex

import pytest

from engine.cli import build_parser, config_from_args
from engine.commands import config_to_command
from engine.config import SHAPES_RECIPE, data_recipe, default_config


def augment(cfg) -> dict:
    return cfg.to_dict()["method_options"].get("augment")


def test_shapes_recipe_reaches_every_method_with_views_and_no_other():
    strong = SHAPES_RECIPE["augment"]
    for method in ("simclr", "byol", "moco", "barlow_twins", "vicreg", "dino"):
        assert augment(default_config(method)) == strong, method  # builtin:shapes is the default data
        assert augment(default_config(method, data={"spec": "builtin:shapes:2000"})) == strong
        assert augment(default_config(method, data={"spec": "some/folder"})) == {}, method
    assert "augment" not in default_config("rotnet").to_dict()["method_options"]
    # the shortcut variant is the lesson: it keeps the methods' own (weaker) colour jitter
    assert data_recipe("builtin:shapes:2000?shortcut=colour") == {}
    assert augment(default_config("simclr", data={"spec": "builtin:shapes:2000?shortcut=colour"})) == {}
    # the light lesson is RotNet's: the view methods keep the shapes' recipe there
    assert data_recipe("builtin:shapes:2000?shortcut=light") == SHAPES_RECIPE


def test_what_the_user_sets_wins_over_the_recipe():
    cfg = default_config("byol", method_options={"augment": {"hue": 0.1}})
    assert augment(cfg) == {"hue": 0.1}


@pytest.mark.parametrize("data,expected", [(None, SHAPES_RECIPE["augment"]), ("builtin:shapes:500", SHAPES_RECIPE["augment"]),
                                           ("../elsewhere/images", {})])
def test_command_line_applies_the_recipe_of_its_data(data, expected):
    argv = ["train", "--method", "byol"] + (["--data", data] if data else [])
    assert augment(config_from_args(build_parser().parse_args(argv))) == expected


@pytest.mark.parametrize("options", [{}, {"augment": {}}, {"augment": {"hue": 0.2}}])
def test_copy_as_command_round_trips_with_and_against_the_recipe(options):
    cfg = default_config("vicreg", data={"spec": "builtin:shapes:800"}, epochs=2, minutes=0.0).to_dict()
    cfg["method_options"].update(options)
    argv = shlex.split(config_to_command(cfg))[2:]
    assert config_from_args(build_parser().parse_args(argv)).to_dict() == cfg


def test_window_model_follows_the_data(qapp):
    from app.models.config_model import ConfigModel
    from engine.worker import catalogue

    m = ConfigModel()
    m.set_catalogue(catalogue())
    m.set("data.spec", "builtin:shapes:2000")
    m.set_method("byol")
    assert m.config()["method_options"]["augment"] == SHAPES_RECIPE["augment"]
    m.set("data.spec", "../some/folder")
    assert m.config()["method_options"]["augment"] == {}
    m.set_option("byol", "augment", {"hue": 0.3})
    m.set("data.spec", "builtin:shapes:2000")
    assert m.config()["method_options"]["augment"] == {"hue": 0.3}  # the user's choice stays
