"""The built-in shapes' spec means the same to the loader, the config's dataset recipe and the Data panel
(all three read it with engine.specs)."""

import sys

import pytest

from engine.config import SHAPES_RECIPE, data_recipe
from engine.specs import parse_shapes_query, shapes_parts, shapes_shortcut

SPECS = [
    ("builtin:shapes", 6000, "none"),
    ("builtin:shapes:500", 500, "none"),
    ("shapes:500?shortcut=colour", 500, "colour"),
    ("builtin:shapes?shortcut=color", 6000, "colour"),
    ("builtin:shapes:300?shortcut=light", 300, "light"),
    ("BUILTIN:Shapes:300?shortcut=colour&shortcut=light", 300, "light"),  # the last one counts
    ("builtin:shapes-test:200?shortcut=colour", 200, "colour"),
]


@pytest.mark.parametrize("spec,count,shortcut", SPECS)
def test_loader_recipe_and_panel_agree(spec, count, shortcut):
    from app.data.model import parse_spec

    c, query = shapes_parts(spec)
    assert parse_shapes_query(f"{c}?{query}") == (count, {"shortcut": shortcut})
    assert shapes_shortcut(query) == shortcut
    assert data_recipe(spec) == ({} if shortcut == "colour" else SHAPES_RECIPE)
    fields = parse_spec(spec)
    assert (fields["kind"], fields["count"]) == (0, count)
    assert (fields["shortcut"], fields["light"]) == (shortcut == "colour", shortcut == "light")


@pytest.mark.parametrize("spec", ["/data/shapes", "torchvision:cifar10", "builtin:clips:40", "shapesx:10", ""])
def test_other_specs_are_not_shapes(spec):
    assert shapes_parts(spec) is None
    assert data_recipe(spec) == {}


@pytest.mark.parametrize("rest,needle", [("12", "between 16"), ("abc", "image count"), ("?shortcut=blue", "one of"),
                                         ("100?colour", "one option")])
def test_bad_queries_say_what_to_write(rest, needle):
    with pytest.raises(ValueError, match=needle):
        parse_shapes_query(rest)
    assert shapes_shortcut(rest.partition("?")[2]) == "none"  # the lenient reading passes over them


def test_the_spec_module_needs_no_torch():
    import subprocess

    code = "import sys, engine.specs, engine.config; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
