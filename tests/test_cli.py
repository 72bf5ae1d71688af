import json
import subprocess
import sys
from pathlib import Path

import pytest

from engine.cli import main as cli
from engine.runs import last_checkpoint

ROOT = Path(__file__).resolve().parents[1]


def sh(*args, timeout=300):
    return subprocess.run([sys.executable, str(ROOT / "main.py"), *args], capture_output=True, text=True,
                          timeout=timeout, cwd=str(ROOT))


def run_cli(args, capsys):
    """(exit status, stdout, stderr) of the CLI run in this process."""
    try:
        rc = cli(args)
    except SystemExit as exc:  # argparse exits on usage errors and --help
        rc = exc.code
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_methods_lists_every_registered_method():
    from engine.methods import METHODS

    out = sh("methods")  # through main.py, as a user types it
    assert out.returncode == 0
    assert out.stdout.split() == list(METHODS)


@pytest.mark.parametrize("sub", ["train", "eval", "embed", "methods"])
def test_help_explains_every_option(sub, capsys):
    rc, out, _ = run_cli([sub, "--help"], capsys)
    assert rc == 0 and "usage:" in out
    if sub == "train":
        for flag in ("--method", "--data", "--minutes", "--epochs", "--batch-size", "--backbone", "--device",
                     "--run-dir", "--resume"):
            assert flag in out


@pytest.mark.parametrize("args,fragment", [
    (["train", "--method", "nope"], "invalid choice"),
    (["train", "--epochs", "many"], "invalid int value"),
    (["train", "--device", "tpu"], "invalid choice"),
    (["train", "--epochs", "1", "--batch-size", "1"], "batch_size: 1 is below the minimum 2"),
    (["train", "--epochs", "1", "--lr", "-1"], "below the minimum"),
    (["train", "--epochs", "1", "--set", "temprature=0.5"], "unknown option(s) temprature"),
    (["train", "--epochs", "1", "--backbone", "alexnet", "--data", "builtin:shapes:16"], "unknown backbone"),
    (["train", "--epochs", "1", "--data", "/definitely/not/here"], "does not exist"),
    (["train", "--epochs", "2", "--minutes", "1"], "not allowed with argument"),
])
def test_wrong_values_get_one_line_and_exit_2(args, fragment, tmp_path, capsys):
    rc, _, err = run_cli(args + ["--runs-root", str(tmp_path)], capsys)
    assert rc == 2, err
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert lines and fragment in lines[-1], err
    assert len([line for line in lines if "error" in line]) == 1


def test_exit_status_through_main_py(tmp_path):
    out = sh("train", "--method", "nope")
    assert out.returncode == 2 and out.stderr.count("\n") == 1 and "simclr" in out.stderr


def test_a_reader_that_leaves_early_ends_the_command_quietly():
    """``main.py methods --long | head -1``: the reader closes the pipe before the command writes; the command
    ends with status 1 and no traceback."""
    proc = subprocess.Popen([sys.executable, str(ROOT / "main.py"), "methods", "--long"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=str(ROOT))
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(timeout=120) == 1 and "Traceback" not in err and "Error" not in err, err


def test_train_resume_and_eval_end_to_end(tmp_path, capsys):
    run_dir = tmp_path / "myrun"
    rc = cli(["train", "--method", "rotnet", "--data", "builtin:shapes:64", "--epochs", "1", "--batch-size", "16",
              "--run-dir", str(run_dir), "--quiet", "--set", "eval.linear_probe_epochs=2"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["reason"] == "completed" and summary["run_dir"] == str(run_dir)
    steps_per_epoch = summary["step"]
    # the same run dir again is refused with a hint
    assert cli(["train", "--epochs", "1", "--run-dir", str(run_dir)]) == 2
    # resume extends a finished run to more epochs
    rc = cli(["train", "--resume", str(run_dir), "--epochs", "2", "--quiet"])
    assert rc == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["epoch"] == 2 and summary["step"] == 2 * steps_per_epoch
    rc = cli(["eval", "--run", str(run_dir), "--train-data", "builtin:shapes:64", "--test-data",
              "builtin:shapes-test:40", "--probe-epochs", "3"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key in ("knn_top1", "linear_top1", "random_init_knn_top1", "raw_pixels_knn_top1"):
        assert 0.0 <= out[key] <= 1.0
    assert out["num_train"] == 64 and out["num_test"] == 40


def test_eval_and_embed_errors(tmp_path, capsys):
    assert cli(["eval", "--run", str(tmp_path), "--train-data", "builtin:shapes:16", "--test-data",
                "builtin:shapes:16"]) == 2
    assert "not a run folder" in capsys.readouterr().err


def test_torchrun_two_processes_write_one_run(tmp_path):
    """The same engine under torchrun (gloo on the CPU): one run folder, written by rank 0."""
    torchrun = Path(sys.executable).parent / "torchrun"
    if not torchrun.exists():
        pytest.skip("torchrun is not installed next to this python")
    out = subprocess.run([str(torchrun), "--standalone", "--nproc_per_node", "2", str(ROOT / "main.py"), "train",
                          "--method", "simclr", "--data", "builtin:shapes:96", "--epochs", "1", "--batch-size", "16",
                          "--runs-root", str(tmp_path), "--device", "cpu", "--quiet",
                          "--set", "eval.linear_probe_epochs=2"],
                         capture_output=True, text=True, timeout=300, cwd=str(ROOT))
    assert out.returncode == 0, out.stderr[-2000:]
    lines = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == 1 and lines[0]["reason"] == "completed"
    runs = list(tmp_path.iterdir())
    assert len(runs) == 1 and last_checkpoint(runs[0]) is not None
    # 96 training images (the shapes have their own test split), 16 a step over both ranks (8 each)
    assert lines[0]["step"] == 96 // 16 and lines[0]["processes"] == 2 and lines[0]["samples"] == 96


def test_refit_batchnorm_takes_the_statistics_of_whole_images_and_changes_nothing_else():
    import torch
    import torch.nn as nn

    from engine.data import load_dataset
    from engine.eval import refit_batchnorm

    data = load_dataset("builtin:shapes:64", 16)
    model = nn.Sequential(nn.BatchNorm2d(3), nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Flatten())
    model.eval()
    assert torch.equal(model[0].running_mean, torch.zeros(3))  # as initialised
    assert refit_batchnorm(model, data, batches=3, batch_size=16, seed=5) == 2
    g = torch.Generator().manual_seed(5)
    seen = torch.cat([data.get(torch.randint(0, 64, (16,), generator=g).numpy()) for _ in range(3)]).float() / 255
    assert torch.allclose(model[0].running_mean, seen.mean(dim=(0, 2, 3)), atol=1e-5)  # the plain average
    assert not model.training and model[0].momentum == 0.1 and model[2].momentum == 0.1
    before = [p.clone() for p in model.parameters()]
    refit_batchnorm(model, data, batches=3, batch_size=16, seed=5)
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))  # weights untouched
    assert torch.allclose(model[0].running_mean, seen.mean(dim=(0, 2, 3)), atol=1e-5)  # the same batches again
    plain = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten())
    assert refit_batchnorm(plain, data) == 0


def test_eval_refit_norm_scores_the_encoder_and_random_init_with_refitted_statistics(finished_run, capsys):
    args = ["eval", "--run", str(finished_run), "--train-data", "builtin:shapes:64", "--test-data",
            "builtin:shapes-test:40", "--probe-epochs", "0"]
    rc, out, err = run_cli([*args, "--refit-norm", "2"], capsys)
    assert rc == 0, err
    res = json.loads(out.strip().splitlines()[-1])
    for key in ("knn_top1", "refit_knn_top1", "random_init_knn_top1", "refit_random_init_knn_top1"):
        assert 0.0 <= res[key] <= 1.0, key
    assert "refit_random_init_knn_top1" in err
    rc, out, err = run_cli([*args, "--refit-norm", "-1"], capsys)
    assert rc == 2 and err.strip().splitlines()[-1].startswith("error: --refit-norm -1")
