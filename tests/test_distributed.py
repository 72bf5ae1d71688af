"""Several processes on the CPU (gloo, started here): one training step with world size 2 and B/2 images
a process gives the loss and the gradients of one process with B images, for every method whose loss
couples samples (tests/test_coupled_losses.py finds them); with ``gather`` off SimCLR's differ (so the
comparison can fail).

Exactness: both sides build the method from the same seed and train on the same views (made once on
the full batch, each process taking its rows), BatchNorm runs in training mode with its statistics
over the global batch (``sync_bn``: on; GlobalBatchNorm on the CPU). The loss of the two processes is
the mean of their losses (each scores its own rows); the gradients are DDP's average.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from engine.config import default_config
from engine.methods import DataInfo, get_method_class
from engine.models import build_backbone
from engine.pretext.base import PretextBatch

B, SIZE, WORLD = 8, 16, 2
OPTIONS = {
    "simclr": {"proj_hidden": 32, "proj_dim": 16, "local_crops": 0},
    "moco": {"proj_hidden": 32, "proj_dim": 16, "queue_size": 40},
    "byol": {"proj_hidden": 32, "proj_dim": 16},
    "barlow_twins": {"proj_dim": 32},
    "vicreg": {"proj_dim": 32},
    "dino": {"out_dim": 64, "head_hidden": 32, "bottleneck": 16, "local_crops": 1},
    "simclr:multicrop": {"proj_hidden": 32, "proj_dim": 16, "local_crops": 1},  # METHOD:VARIANT
    "cpc": {"grid": 3, "patch": 8, "stride": 4, "steps": 1},
    "exemplar": {"copies": 3, "proj_hidden": 32, "proj_dim": 16},
    "tracking": {"proj_hidden": 32, "proj_dim": 16, "max_gap": 2},
    "tracking:random": {"proj_hidden": 32, "proj_dim": 16, "max_gap": 2, "negatives": "random"},
}
CLIP_FRAMES = 4


def build(key: str):
    name = key.partition(":")[0]
    cls = get_method_class(name)
    cfg = default_config(name, method_options=OPTIONS[key]).method_config()
    torch.manual_seed(0)
    method = cls(cfg, build_backbone("small_cnn", SIZE), DataInfo(SIZE, 0))
    return method.train()


def images(method=None) -> torch.Tensor:
    """The batch (clips for a method that trains on clips)."""
    frames = (CLIP_FRAMES,) if method is not None and method.input_kind == "clips" else ()
    return torch.rand(B, *frames, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(3))


def fixed_views(method, rows: slice) -> None:
    """Make ``method.make_batch`` return the rows ``rows`` of views drawn once for the full batch."""
    full = method.make_batch(images(method), torch.Generator().manual_seed(1)).inputs
    part = full[rows] if torch.is_tensor(full) else tuple(v[rows] for v in full)
    method.make_batch = lambda x, g, preview=False: PretextBatch(part, None, {})


def states(method) -> dict:
    """What a step changes besides the gradients: MoCo's queue, DINO's centre."""
    return {k: v.detach().clone() for k, v in method.named_buffers() if k in ("queue", "center")}


def reference(name: str):
    method = build(name)
    fixed_views(method, slice(None))
    out = method.training_step(images(method), None, None)
    out.loss.backward()
    return float(out.loss.detach()), {n: p.grad.clone() for n, p in method.named_parameters() if p.grad is not None}, \
        states(method)


def _worker(rank: int, port: int, runs: list, out_path: str) -> None:
    import torch.distributed as dist

    from engine.dist import Group
    from engine.training.distributed import sync_batchnorm, wrap_step

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    results = {}
    try:
        for name, gather in runs:
            method = sync_batchnorm(build(name), torch.device("cpu"), WORLD, "on")
            method.set_group(Group(gather=gather))
            b = B // WORLD
            fixed_views(method, slice(rank * b, (rank + 1) * b))
            step = wrap_step(method, torch.device("cpu"), WORLD, synced_bn=True)
            loss, _ = step(images(method)[rank * b:(rank + 1) * b], None, None)
            loss.backward()
            mean_loss = loss.detach().clone()
            dist.all_reduce(mean_loss)
            grads = {n: p.grad.clone() for n, p in method.named_parameters() if p.grad is not None}
            results[(name, gather)] = (float(mean_loss) / WORLD, grads, states(method))
        if rank == 0:
            torch.save(results, out_path)
        dist.barrier()
    finally:
        dist.destroy_process_group()
    leave_now()


def leave_now() -> None:
    """End a worker without the interpreter's teardown: gloo's threads, still held by objects that die
    in it, abort the process there now and then (SIGABRT after everything was written)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm().clamp(min=1e-12))


def grad_diff(got: dict, ref: dict) -> float:
    """The largest relative difference of a parameter's gradient (over those with a gradient of note)."""
    assert set(got) == set(ref), set(got) ^ set(ref)
    total = torch.sqrt(sum((g.norm() ** 2 for g in ref.values()), torch.tensor(0.0)))
    return max(rel(got[n], ref[n]) for n in ref if ref[n].norm() > 1e-6 * total)


@pytest.fixture(scope="module")
def two_process_results(tmp_path_factory):
    import torch.multiprocessing as mp

    out = tmp_path_factory.mktemp("ddp") / "results.pt"
    runs = [(name, True) for name in OPTIONS] + [("simclr", False)]
    mp.spawn(_worker, args=(free_port(), runs, str(out)), nprocs=WORLD, join=True)
    return torch.load(out, weights_only=False)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(OPTIONS))
def test_two_processes_match_one(two_process_results, name):
    loss, grads, state = two_process_results[(name, True)]
    ref_loss, ref_grads, ref_state = reference(name)
    assert abs(loss - ref_loss) / abs(ref_loss) < 1e-4, (loss, ref_loss)
    assert grad_diff(grads, ref_grads) < 1e-4
    for key, value in ref_state.items():  # MoCo's queue holds every process's keys; DINO's centre their mean
        assert rel(state[key], value) < 1e-5, key


@pytest.mark.slow
def test_without_gather_simclr_differs(two_process_results):
    loss, grads, _ = two_process_results[("simclr", False)]
    ref_loss, ref_grads, _ = reference("simclr")
    assert abs(loss - ref_loss) / abs(ref_loss) > 1e-2  # fewer negatives a process: a lower loss
    assert grad_diff(grads, ref_grads) > 1e-2


def test_shard_order_keeps_global_batches():
    """Global batch k of an epoch is the same images for 1, 2 or 4 processes (so a run resumed with
    another number of processes continues at the same sample)."""
    from engine.training.distributed import shard_order

    order = torch.randperm(70, generator=torch.Generator().manual_seed(0))
    for world in (1, 2, 4):
        parts = [shard_order(order, 16, world, r).view(-1, 16 // world) for r in range(world)]
        assert all(p.shape[0] == 70 // 16 for p in parts)
        for k in range(70 // 16):
            got = torch.cat([p[k] for p in parts])
            assert torch.equal(got, order[k * 16:(k + 1) * 16])


ROOT = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")


def torchrun(launch: list[str], runs_root, *train: str) -> list[str]:
    """The command line of a small SimCLR run on the built-in shapes under ``torchrun`` (``launch``: its own
    flags), CPU only, no evaluation; ``train``: more flags of the train command."""
    return [sys.executable, "-m", "torch.distributed.run", *launch, str(ROOT / "main.py"), "train",
            "--method", "simclr", "--data", "builtin:shapes:64", "--device", "cpu", "--no-final-eval",
            "--runs-root", str(runs_root), "--set", "eval.knn_every_epochs=0", "--set", "proj_hidden=64", *train]


def summary_of(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_two_process_run_resumes_with_one(tmp_path):
    """torchrun (c10d rendezvous, as on several nodes) with 2 processes for 2 epochs, resumed with 1
    process to 3 epochs: the resumed run continues at the step and global sample count it stopped at."""
    first = subprocess.run(
        torchrun(["--nnodes", "1", "--nproc_per_node", "2", "--rdzv-backend", "c10d",
                  "--rdzv-endpoint", f"127.0.0.1:{free_port()}"], tmp_path,
                 "--epochs", "2", "--batch-size", "16", "--quiet"),
        capture_output=True, text=True, timeout=240, cwd=str(ROOT), env=ENV)
    assert first.returncode == 0, first.stderr[-2000:]
    s1 = summary_of(first.stdout)
    assert (s1["processes"], s1["step"], s1["samples"], s1["epoch"]) == (2, 2 * (64 // 16), 2 * 64, 2)
    run_dir = Path(s1["run_dir"])
    second = subprocess.run([sys.executable, str(ROOT / "main.py"), "train", "--resume", str(run_dir), "--epochs",
                             "3", "--device", "cpu", "--quiet"],
                            capture_output=True, text=True, timeout=240, cwd=str(ROOT), env=ENV)
    assert second.returncode == 0, second.stderr[-2000:]
    s2 = summary_of(second.stdout)
    assert (s2["processes"], s2["step"], s2["samples"], s2["epoch"]) == (1, 3 * 4, 3 * 64, 3)
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    resume = [r for r in records if r["type"] == "resume"]
    assert [(r["step"], r["samples"], r["processes"]) for r in resume] == [(8, 128, 1)]
    steps = [r for r in records if r["type"] == "step"]
    assert all(r["samples"] == 16 * r["step"] for r in steps)
    assert max(r["step"] for r in steps) == 12 and any(r["step"] > 8 for r in steps)


def test_two_nodes_meet_by_c10d_rendezvous_and_only_the_main_process_writes(tmp_path):
    """Two torchrun agents, as on two nodes (``--nnodes 2``, one process each, the same rendezvous id and
    endpoint): they train one run of world size 2; only the process that got rank 0 writes a run folder,
    each "node" with its own runs folder here, so a second writer could not hide; the run's first line
    says how many processes train it; no deprecation warning reaches the user."""
    launch = ["--nnodes", "2", "--nproc_per_node", "1", "--rdzv-id", "two-nodes", "--rdzv-backend", "c10d",
              "--rdzv-endpoint", f"127.0.0.1:{free_port()}"]
    nodes = [subprocess.Popen(torchrun(launch, tmp_path / f"node{k}", "--epochs", "2", "--batch-size", "16"),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=str(ROOT), env=ENV)
             for k in range(2)]
    outs = [p.communicate(timeout=240) for p in nodes]
    assert [p.returncode for p in nodes] == [0, 0], [err[-2000:] for _, err in outs]
    summaries = [summary_of(out) for out, _ in outs if out.strip()]
    assert len(summaries) == 1 and (summaries[0]["processes"], summaries[0]["step"], summaries[0]["samples"]) \
        == (2, 2 * (64 // 16), 2 * 64)
    written = sorted(p for k in range(2) for p in (tmp_path / f"node{k}").glob("*") if p.is_dir())
    assert written == [Path(summaries[0]["run_dir"])]
    assert (written[0] / "checkpoints" / "last.pt").exists()
    assert not any("Warning" in err for _, err in outs), [err[-2000:] for _, err in outs]
    assert "on 2 processes, each on CPU (1 thread):" in "".join(err for _, err in outs)


@pytest.mark.slow
def test_compiled_step_trains_under_two_processes(tmp_path):
    """``--compile`` under DDP (2 processes) trains: the step compiles with static shapes, as with
    automatic dynamic shapes inductor failed to generate a backward (torch 2.14)."""
    done = subprocess.run(
        torchrun(["--standalone", "--nproc_per_node", "2"], tmp_path,
                 "--epochs", "1", "--batch-size", "32", "--compile", "--quiet"),
        capture_output=True, text=True, timeout=400, cwd=str(ROOT), env=ENV)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = summary_of(done.stdout)
    assert (summary["processes"], summary["step"], summary["samples"]) == (2, 2, 64)
    assert json.loads((Path(summary["run_dir"]) / "config.json").read_text())["compile"] is True


def test_torchrun_line_and_slurm_script():
    """The Run panel's torchrun line and Slurm script: the train part parses back to the same config,
    the script is valid bash and meets on the first node with the c10d rendezvous."""
    import shlex
    import shutil

    from engine.cli import build_parser, config_from_args, slurm_script, torchrun_command

    cfg = default_config("simclr", epochs=7, gather=False, sync_bn="on", compile=True,
                         data={"spec": "my images/train"}).to_dict()
    one = torchrun_command(cfg)
    assert one.startswith("torchrun --standalone --nproc_per_node gpu main.py train ")
    many = torchrun_command(cfg, nnodes=3)
    assert "--nnodes 3" in many and "--rdzv-backend c10d" in many
    for line in (one, many):
        argv = shlex.split(line.replace("$", ""))
        args = build_parser().parse_args(argv[argv.index("main.py") + 1:])
        assert config_from_args(args).to_dict() == cfg
    script = slurm_script(cfg, nodes=2, gpus_per_node=8)
    assert "#SBATCH --nodes=2" in script and "--nproc_per_node 8" in script and "srun torchrun" in script
    if shutil.which("bash"):
        assert subprocess.run(["bash", "-n"], input=script, text=True).returncode == 0


# -- a divergence on one process stops every process ---------------------------------------------------
NAN_FROM = 13  # the step (counted from 1) from which process 1's loss is NaN


def _diverging_worker(rank: int, port: int, runs_root: str, out_dir: str) -> None:
    """A whole Session under 2 processes (gloo) whose process 1 gets a NaN loss from step NAN_FROM."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), LOCAL_RANK=str(rank),
                      WORLD_SIZE=str(WORLD))
    torch.set_num_threads(1)
    from engine.config import RunConfig
    from engine.session import Session

    cls = get_method_class("simclr")
    real, calls = cls.training_step, [0]

    def step(self, x, labels, g):
        out = real(self, x, labels, g)
        calls[0] += 1
        if rank == 1 and calls[0] >= NAN_FROM:
            out.loss = out.loss * float("nan")
        return out

    cls.training_step = step
    cfg = RunConfig.from_dict(dict(
        method="simclr", backbone="small_cnn", epochs=50, device="cpu", runs_root=runs_root,
        data={"spec": "builtin:shapes:64", "image_size": SIZE}, optim={"batch_size": 16},
        method_options=OPTIONS["simclr"],
        eval={"final_eval": False, "knn_every_epochs": 0, "embed_every_epochs": 0, "snapshot_every_s": 0}))
    summary = Session(cfg, distributed=True).run()
    (Path(out_dir) / f"rank{rank}.json").write_text(json.dumps(summary))
    leave_now()


def test_divergence_on_one_process_stops_all_with_one_message(tmp_path):
    """Process 1's loss becomes NaN: both processes agree on it at their next agreement and stop within
    seconds (none is left waiting in a collective), with the same one-line message and exit code; the
    main process keeps the last good state as the run's checkpoint."""
    import time

    import torch.multiprocessing as mp

    ctx = mp.start_processes(_diverging_worker, args=(free_port(), str(tmp_path / "runs"), str(tmp_path)),
                             nprocs=WORLD, join=False, start_method="spawn")
    deadline = time.monotonic() + 180
    try:
        # poll rather than join: a rank's exit status after its summary is written is not what this tests
        # (gloo's teardown has been seen to abort a rank at exit, once in four runs), and join would
        # terminate the other rank at once
        while any(p.is_alive() for p in ctx.processes):
            assert time.monotonic() < deadline, "a process hung after the divergence"
            time.sleep(0.5)
    finally:
        for p in ctx.processes:
            if p.is_alive():
                p.kill()
    got = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(WORLD)]
    assert [g["reason"] for g in got] == ["failed", "failed"]
    assert got[0]["error"] == got[1]["error"] and got[0]["exit_code"] == got[1]["exit_code"] == 1
    line = got[0]["error"]
    assert "training diverged: the loss became nan at step 20" in line and "\n" not in line
    state = torch.load(next((tmp_path / "runs").glob("*/checkpoints/last.pt")), weights_only=True)
    assert f"the last good state (step {state['step']})" in line and state["step"] < NAN_FROM


def _children_with_rank(parent_pid: int, rank: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text().rsplit(")", 1)[1].split()
            env = (d / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if int(stat[1]) == parent_pid and f"RANK={rank}".encode() in env:
            out.append(int(d.name))
    return out


@pytest.mark.slow
@pytest.mark.fault("round 2: a process of a torchrun run killed: the other says so in one line (which process, "
                   "the step, how to continue), no raw gloo text; its checkpoint is at that step")
def test_a_dead_peer_gives_one_line(tmp_path):
    if not Path("/proc/self/environ").exists():
        pytest.skip("finds the worker processes through /proc")
    p = subprocess.Popen(torchrun(["--standalone", "--nproc_per_node", "2"], tmp_path, "--minutes", "2",
                                  "--batch-size", "16", "--quiet"),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=str(ROOT), env=ENV)
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            runs = [d for d in tmp_path.glob("*") if (d / "checkpoints" / "last.pt").exists()]
            if runs:
                break
            assert p.poll() is None, p.communicate()
            time.sleep(0.2)
        time.sleep(1.0)
        victims = _children_with_rank(p.pid, 1)
        assert len(victims) == 1
        os.kill(victims[0], signal.SIGKILL)
        out, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode != 0
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err[-3000:]
    line = lines[0]
    assert "process 1 of 2 ended unexpectedly; the run stopped at step" in line and "--resume" in line
    assert "pair.cc" not in err and "Connection reset" not in err and "gloo" not in err.lower()
    run_dir = runs[0]
    state = json.loads((run_dir / "status.json").read_text())
    assert state["state"] == "failed" and state["error"] == line.removeprefix("error: ")
    step = int(line.split("stopped at step ")[1].split(";")[0])
    ckpt = torch.load(run_dir / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)
    assert ckpt["step"] == step > 0
