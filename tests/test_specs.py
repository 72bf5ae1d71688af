"""The built-in shapes' spec means the same to the loader, the config's dataset recipe and the Data panel
(all three read it with engine.specs)."""

import sys

import pytest

from engine.config import SHAPES_RECIPE, data_recipe
from engine.specs import parse_shapes_query, recipe_spec, shapes_colours, shapes_parts, shapes_shortcut

SPECS = [
    ("builtin:shapes", 6000, "none", "any"),
    ("builtin:shapes:500", 500, "none", "any"),
    ("shapes:500?shortcut=colour", 500, "colour", "any"),
    ("builtin:shapes?shortcut=color", 6000, "colour", "any"),
    ("builtin:shapes:300?shortcut=light", 300, "light", "any"),
    ("BUILTIN:Shapes:300?shortcut=colour&shortcut=light", 300, "light", "any"),  # the last one counts
    ("builtin:shapes-test:200?shortcut=colour", 200, "colour", "any"),
    ("builtin:shapes?colours=typical", 6000, "none", "typical"),
    ("builtin:shapes:400?Colors=Typical&shortcut=light", 400, "light", "typical"),
    ("builtin:shapes-test:200?colours=typical", 200, "none", "typical"),
]


@pytest.mark.parametrize("spec,count,shortcut,colours", SPECS)
def test_loader_recipe_and_panel_agree(spec, count, shortcut, colours):
    from app.data.model import build_spec, parse_spec

    c, query = shapes_parts(spec)
    assert parse_shapes_query(f"{c}?{query}") == (count, {"shortcut": shortcut, "colours": colours})
    assert shapes_shortcut(query) == shortcut and shapes_colours(query) == colours
    assert data_recipe(spec) == ({} if shortcut == "colour" else SHAPES_RECIPE)
    fields = parse_spec(spec)
    assert (fields["kind"], fields["count"]) == (0, count)
    assert (fields["shortcut"], fields["light"]) == (shortcut == "colour", shortcut == "light")
    assert fields["typical"] == (colours == "typical")
    # the panel writes back a spec that means the same
    again = build_spec(0, count, fields["shortcut"], light=fields["light"], typical=fields["typical"])
    assert parse_shapes_query(shapes_parts(again)[0] + "?" + shapes_parts(again)[1]) == \
        (count, {"shortcut": shortcut, "colours": colours})


def test_a_recipe_spec_keeps_the_count_and_asks_only_what_is_missing():
    want = "builtin:shapes?colours=typical"
    assert recipe_spec("builtin:shapes:2000", want) == "builtin:shapes:2000?colours=typical"
    assert recipe_spec("builtin:shapes:2000?colours=typical", want) == "builtin:shapes:2000?colours=typical"
    assert recipe_spec("shapes:300?colors=typical", want) == "shapes:300?colors=typical"  # already so
    assert recipe_spec("builtin:shapes", want) == want
    assert recipe_spec("/data/photos", want) == want
    assert recipe_spec("/data/photos", "/data/photos") == "/data/photos"


@pytest.mark.parametrize("spec", ["/data/shapes", "torchvision:cifar10", "builtin:clips:40", "shapesx:10", ""])
def test_other_specs_are_not_shapes(spec):
    assert shapes_parts(spec) is None
    assert data_recipe(spec) == {}


@pytest.mark.parametrize("rest,needle", [("12", "between 16"), ("abc", "image count"), ("?shortcut=blue", "one of"),
                                         ("100?colour", "takes the options"), ("?colours=vivid", "colours must be"),
                                         ("?colours", "colours=typical")])
def test_bad_queries_say_what_to_write(rest, needle):
    with pytest.raises(ValueError, match=needle) as err:
        parse_shapes_query(rest)
    assert "\n" not in str(err.value)
    assert shapes_shortcut(rest.partition("?")[2]) == "none"  # the lenient reading passes over them
    assert shapes_colours(rest.partition("?")[2]) == "any"


def test_colours_follow_the_shape_and_every_image_its_own_colours_exclude_each_other():
    with pytest.raises(ValueError, match="choose one"):
        parse_shapes_query("500?shortcut=colour&colours=typical")


def test_the_spec_module_needs_no_torch():
    import subprocess

    code = "import sys, engine.specs, engine.config; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_recipe_names_only_what_the_config_lacks():
    from app.run.model import recipe_text
    from engine.specs import recipe_changes

    info = {"recipe": {"overrides": {"data.spec": "builtin:shapes?colours=typical", "minutes": 5.0}, "why": "Why."}}
    cfg = {"minutes": 2.0, "data": {"spec": "builtin:shapes:2000"}}
    changes = recipe_changes(info, cfg)
    assert changes == {"minutes": (2.0, 5.0),
                       "data.spec": ("builtin:shapes:2000", "builtin:shapes:2000?colours=typical")}
    text = recipe_text(info, changes)
    assert "Why." in text and "builtin:shapes:2000?colours=typical" in text and "minutes" in text
    assert recipe_changes(info, {"minutes": 10.0, "data": {"spec": "builtin:shapes:2000?colours=typical"}}) == {}
    assert recipe_changes({"recipe": {}}, cfg) == {} and recipe_changes(None, cfg) == {}


def test_a_recipe_budget_lifts_the_other_bound():
    """A run ends at the first of its epochs and minutes: a recipe's budget in epochs lifts the minutes (and the
    other way round), where the config has them and the recipe does not set both."""
    from engine.specs import recipe_changes

    by_epochs = {"photo_recipe": {"overrides": {"epochs": 18}, "why": "."}}
    photos = {"spec": "/data/photos"}
    assert recipe_changes(by_epochs, {"minutes": 3.0, "epochs": 0, "data": photos}) == \
        {"epochs": (0, 18), "minutes": (3.0, 0.0)}
    assert recipe_changes(by_epochs, {"minutes": 3.0, "epochs": 30, "data": photos}) == {}  # more epochs kept
    from app.run.model import recipe_text

    text = recipe_text(by_epochs, recipe_changes(by_epochs, {"minutes": 3.0, "epochs": 0, "data": photos}),
                       photos["spec"])
    assert "epochs: 0 (the minutes decide) &rarr; <b>18</b>" in text and "<b>0 (no time limit)</b>" in text
    by_minutes = {"recipe": {"overrides": {"minutes": 6.0}, "why": "."}}
    assert recipe_changes(by_minutes, {"minutes": 2.0, "epochs": 5, "data": {"spec": "builtin:shapes"}}) == \
        {"minutes": (2.0, 6.0), "epochs": (5, 0)}
    assert recipe_changes(by_minutes, {"minutes": 2.0, "epochs": 0, "data": {"spec": "builtin:shapes"}}) == \
        {"minutes": (2.0, 6.0)}


def test_measured_text_says_how_the_defaults_did_on_data_like_the_spec():
    from engine.specs import measured_kind, measured_text

    assert measured_kind("builtin:shapes:2000") == "shapes" and measured_kind("shapes") == "shapes"
    assert measured_kind("builtin:shapes?colours=typical") is None  # a variant is another set
    assert measured_kind("builtin:clips") == "clips" and measured_kind("/data/photos/train") == "photos"
    assert measured_kind("") is None
    row = {"words": "the built-in shapes", "minutes": 2.0, "steps": 1200, "random_init": 0.5, "target": 0.15,
           "date": "2026-12-06", "table": "bench/results/methods_shapes.md"}
    entry = {"measured": {"shapes": {**row, "knn": 0.7}}}
    text = measured_text(entry, "builtin:shapes")
    assert "2 minutes" in text and "1,200 steps" in text and "0.700 against 0.500" in text and "+0.200" in text
    assert "it learns here" in text and "methods_shapes.md" in text
    short = measured_text({"measured": {"shapes": {**row, "knn": 0.6}}}, "builtin:shapes")
    assert "short of the +0.15" in short and "nothing measured on a CPU reaches it" in short
    recipe = {"overrides": {"minutes": 4.0}, "why": "time"}
    assert "its recipe for this data" in measured_text({"recipe": recipe, "measured": {"shapes": {**row, "knn": 0.6}}},
                                                       "builtin:shapes")
    assert "recipe" not in text  # where the defaults meet the aim, no word of one
    assert "does not beat" in measured_text({"measured": {"shapes": {**row, "knn": 0.45}}}, "builtin:shapes")
    assert measured_text(entry, "/data/photos") == "" and measured_text(None, "builtin:shapes") == ""
    assert measured_text({"measured": {"shapes": {"knn": 0.7}}}, "builtin:shapes") == ""  # a partial row: nothing
