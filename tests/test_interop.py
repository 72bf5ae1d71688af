"""Readable by the tools people already use: TensorBoard scalars of every run, the projector's files from
`embed --format tensorboard`, metrics.jsonl through a tiny loader, `--version` on every command, and the
installed package's shape."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.test_bad_inputs import TINY, run_cli

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("interop")
    rc, out, err = run_cli(["train", "--method", "rotnet", "--data", "builtin:shapes:64", "--epochs", "2",
                            "--runs-root", root, *TINY])
    assert rc == 0, err
    return Path(json.loads(out.strip().splitlines()[-1])["run_dir"])


def test_a_run_folder_opens_in_tensorboards_reader(tiny_run):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tiny_run / "tensorboard"))
    acc.Reload()
    tags = acc.Tags()["scalars"]
    assert "train/loss" in tags and "train/lr" in tags and "final/knn_top1" in tags
    loss = acc.Scalars("train/loss")
    from engine.runs import read_metrics

    steps = [r for r in read_metrics(tiny_run) if r["type"] == "step"]
    assert [e.step for e in loss] == [r["step"] for r in steps]
    assert np.allclose([e.value for e in loss], [r["loss"] for r in steps], rtol=1e-5)


def test_tensorboard_scalars_can_be_switched_off(tmp_path, monkeypatch):
    monkeypatch.setenv("SSLWB_TENSORBOARD", "0")
    rc, out, err = run_cli(["train", "--method", "rotnet", "--data", "builtin:shapes:64", "--epochs", "1",
                            "--runs-root", tmp_path, *TINY])
    assert rc == 0, err
    run_dir = Path(json.loads(out.strip().splitlines()[-1])["run_dir"])
    assert (run_dir / "metrics.jsonl").exists() and not (run_dir / "tensorboard").exists()


def test_metrics_load_as_records_a_table_takes(tiny_run):
    from engine.runs import read_metrics

    records = read_metrics(tiny_run)
    assert records and all(isinstance(r, dict) and "type" in r for r in records)
    steps = [r for r in records if r["type"] == "step"]
    assert {"step", "epoch", "samples", "time", "loss", "lr", "images_per_s"} <= set(steps[0])
    try:
        import pandas as pd
    except ImportError:
        return
    frame = pd.DataFrame(records)
    assert len(frame) == len(records) and frame.loc[frame.type == "step", "loss"].notna().all()


def test_embed_writes_tensorboards_projector_files(tiny_run, tmp_path):
    out = tmp_path / "proj"
    rc, stdout, err = run_cli(["embed", "--run", tiny_run, "--data", "builtin:shapes:40", "--image-size", "16",
                               "--format", "tensorboard", "--out", out])
    assert rc == 0, err
    assert json.loads(stdout.strip().splitlines()[-1])["projector"] == str(out)
    tensors = np.loadtxt(out / "tensors.tsv", delimiter="\t")
    meta = (out / "metadata.tsv").read_text().splitlines()
    assert tensors.shape[0] == 40 and len(meta) == 41 and meta[0].split("\t")[:2] == ["label", "class"]
    config = (out / "projector_config.pbtxt").read_text()
    assert 'tensor_path: "tensors.tsv"' in config and 'metadata_path: "metadata.tsv"' in config
    from PIL import Image

    sprite = Image.open(out / "sprite.png")
    assert "single_image_dim: 16" in config and sprite.size == (7 * 16, 7 * 16)  # ceil(sqrt(40)) = 7 a side


def test_every_command_answers_version(capsys):
    """Every command answers --version with the package's version: main.py itself and one subcommand as a user
    runs them (a process each), every subcommand through the same parser in this process."""
    from engine.cli import build_parser, version

    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices  # noqa: SLF001 - argparse's own
    assert {"train", "eval", "embed", "downstream", "invariance", "attention", "methods"} <= set(commands)
    want = f"ssl-workbench {version()}"
    for argv in ([], ["train"]):
        out = subprocess.run([sys.executable, str(ROOT / "main.py"), *argv, "--version"], capture_output=True,
                             text=True, timeout=120, cwd=str(ROOT))
        assert out.returncode == 0 and out.stdout.strip() == want, (argv, out.stderr)
    for name in commands:
        with pytest.raises(SystemExit) as stop:
            build_parser().parse_args([name, "--version"])
        assert stop.value.code in (0, None) and capsys.readouterr().out.strip() == want, name


def test_the_package_lists_every_package_and_installs_under_one_name():
    """The wheel installs one package, ssl_workbench, holding main.py, engine/, app/ and resources/: its list of
    packages in pyproject.toml must name every package of engine/ and app/ (a new one left out would be missing
    from an installed copy)."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())
    listed = set(cfg["tool"]["setuptools"]["packages"])
    found = {"ssl_workbench"} | {"ssl_workbench." + ".".join(p.parent.relative_to(ROOT).parts)
                                 for top in ("engine", "app") for p in (ROOT / top).rglob("__init__.py")}
    assert listed == found, (found - listed, listed - found)
    assert cfg["tool"]["setuptools"]["package-dir"] == {"ssl_workbench": "."}
    assert cfg["project"]["scripts"]["ssl-workbench"] == "ssl_workbench.main:main"


@pytest.mark.slow
def test_the_wheel_holds_the_window_s_resources_and_no_top_level_app(tmp_path):
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                          "-w", str(tmp_path), str(ROOT)], capture_output=True, text=True, timeout=300,
                         env=dict(os.environ, PIP_NO_INPUT="1"))
    if out.returncode != 0 and "setuptools" in out.stderr.lower():
        pytest.skip("no setuptools to build with here")
    assert out.returncode == 0, out.stderr[-2000:]
    import zipfile

    [wheel] = list(tmp_path.glob("ssl_workbench-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"ssl_workbench"}, tops
    for needed in ("ssl_workbench/main.py", "ssl_workbench/resources/style.qss", "ssl_workbench/resources/icons/app.svg",
                   "ssl_workbench/engine/session.py", "ssl_workbench/app/window/launch.py"):
        assert needed in names, needed
