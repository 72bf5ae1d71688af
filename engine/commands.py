"""The command lines that reproduce a run config: ``python main.py train ...``, its ``torchrun`` form
and a Slurm script (the Run panel's *Copy as command* and the README's examples use them)."""

from __future__ import annotations

import json

_FLAGGED = {("data", "spec"), ("data", "eval_spec"), ("data", "image_size"), ("data", "download"),
            ("", "epochs"), ("", "minutes"), ("optim", "batch_size"), ("optim", "lr"), ("", "backbone"),
            ("", "seed"), ("", "name"), ("", "runs_root"), ("", "device"), ("eval", "final_eval"), ("", "method"),
            ("", "compile"), ("", "gather"), ("", "sync_bn"), ("", "init"), ("", "init_arch"), ("", "init_select")}


def _set_value(value) -> str:
    if isinstance(value, str):
        try:
            json.loads(value)
        except ValueError:
            return value  # a plain word stays plain
        return json.dumps(value)  # "1", "true", "null" ... must stay strings
    return json.dumps(value, separators=(",", ":"))


def config_to_command(config: dict, base: dict | None = None, program: str = "python main.py") -> str:
    """The ``python main.py train ...`` line that reproduces ``config`` exactly.

    Common fields become flags, every other field that differs from ``base`` a ``--set KEY=VALUE``.
    ``base`` is what the CLI starts from for the config's method (``default_config(method).to_dict()``);
    it is computed when not given (that imports the methods, hence torch; a GUI passes its own).
    """
    import shlex

    if base is None:
        from engine.config import default_config

        spec = (config.get("data") or {}).get("spec")
        base = default_config(config.get("method", "simclr"), **({"data": {"spec": spec}} if spec else {})).to_dict()
    args = ["train", "--method", str(config["method"])]
    data, bdata = config.get("data", {}), base.get("data", {})
    args += ["--data", str(data.get("spec", bdata.get("spec", "builtin:shapes")))]
    if data.get("eval_spec"):
        args += ["--eval-data", str(data["eval_spec"])]
    if data.get("image_size", bdata.get("image_size")) != bdata.get("image_size") or \
            (config.get("init") and data.get("image_size")):  # --init alone takes the encoder's size
        args += ["--image-size", str(data["image_size"])]
    if data.get("download"):
        args.append("--download")
    epochs, minutes = config.get("epochs", 0), config.get("minutes", 0.0)
    if epochs:
        args += ["--epochs", str(epochs)]
        if minutes:
            args += ["--set", f"minutes={_set_value(minutes)}"]
    elif minutes:
        args += ["--minutes", repr(float(minutes))]
    optim, boptim = config.get("optim", {}), base.get("optim", {})
    if optim.get("batch_size", boptim.get("batch_size")) != boptim.get("batch_size"):
        args += ["--batch-size", str(optim["batch_size"] or "auto")]
    if optim.get("lr", boptim.get("lr")) != boptim.get("lr"):
        args += ["--lr", repr(float(optim["lr"]))]
    for key, flag in (("init", "--init"), ("init_arch", "--arch"), ("init_select", "--select")):
        if config.get(key):
            args += [flag, str(config[key])]
    for key, flag in (("backbone", "--backbone"), ("seed", "--seed"), ("runs_root", "--runs-root")):
        if key == "backbone" and config.get("init"):
            continue  # --init sets the backbone
        if key in config and config[key] != base.get(key):
            args += [flag, str(config[key])]
    if config.get("name"):
        args += ["--name", str(config["name"])]
    if config.get("device", "auto") != "auto":
        args += ["--device", str(config["device"])]
    if config.get("eval", {}).get("final_eval") is False:
        args.append("--no-final-eval")
    if config.get("compile"):
        args.append("--compile")
    if config.get("gather") is False:
        args.append("--no-gather")
    if config.get("sync_bn", "auto") != "auto":
        args += ["--sync-bn", str(config["sync_bn"])]
    top = set(base)
    for key, value in config.items():
        if isinstance(value, dict) and key != "method_options":
            for sub, v in value.items():
                if (key, sub) not in _FLAGGED and v != base.get(key, {}).get(sub):
                    args += ["--set", f"{key}.{sub}={_set_value(v)}"]
        elif key == "method_options":
            bopts = base.get("method_options", {})
            for sub, v in (value or {}).items():
                if v != bopts.get(sub):
                    name = f"method_options.{sub}" if sub in top else sub
                    args += ["--set", f"{name}={_set_value(v)}"]
        elif ("", key) not in _FLAGGED and value != base.get(key):
            args += ["--set", f"{key}={_set_value(value)}"]
    return " ".join([program] + [shlex.quote(a) for a in args])


def torchrun_command(config: dict, base: dict | None = None, *, nnodes: int = 1, nproc_per_node: str = "gpu",
                     endpoint: str = "$HEAD_NODE:29500", run_id: str = "$JOB_ID") -> str:
    """The ``torchrun ... main.py train ...`` line of ``config``: on this machine's GPUs (``nnodes`` 1), or
    on ``nnodes`` machines meeting at ``endpoint`` (c10d rendezvous; run the same line on every node)."""
    train = config_to_command(config, base, program="main.py")
    if nnodes <= 1:
        return f"torchrun --standalone --nproc_per_node {nproc_per_node} {train}"
    return (f"torchrun --nnodes {nnodes} --nproc_per_node {nproc_per_node} --rdzv-id {run_id} "
            f"--rdzv-backend c10d --rdzv-endpoint {endpoint} {train}")


def slurm_script(config: dict, base: dict | None = None, *, nodes: int = 2, gpus_per_node: int = 4,
                 cpus_per_task: int = 16, time_limit: str = "04:00:00") -> str:
    """A Slurm batch script that trains ``config`` on ``nodes`` x ``gpus_per_node`` GPUs (one torchrun
    a node, c10d rendezvous on the first node). Submit it with ``sbatch`` from the project folder."""
    line = torchrun_command(config, base, nnodes=nodes, nproc_per_node=str(gpus_per_node),
                            endpoint='"$HEAD_NODE:29500"', run_id='"$SLURM_JOB_ID"')
    line = line.replace(f"--nnodes {nodes} ", '--nnodes "$SLURM_NNODES" ', 1)
    name = "sslwb-" + "".join(c if c.isalnum() or c in "-_" else "-" for c in str(config.get("method", "run")))
    return "\n".join([
        "#!/bin/bash",
        f"# SSL Workbench: {config.get('method')} on {config.get('data', {}).get('spec', '')}, "
        f"{nodes} nodes x {gpus_per_node} GPUs.",
        "# Submit from the project folder (on a file system every node sees): sbatch THIS_FILE",
        "# Only the main process writes the run folder; continue a stopped run with",
        "#   ... main.py train --resume runs/<run folder>   (any number of nodes or GPUs).",
        f"#SBATCH --job-name={name}",
        f"#SBATCH --nodes={nodes}",
        "#SBATCH --ntasks-per-node=1",
        f"#SBATCH --gpus-per-node={gpus_per_node}",
        f"#SBATCH --cpus-per-task={cpus_per_task}",
        f"#SBATCH --time={time_limit}",
        "#SBATCH --output=%x-%j.out",
        "set -euo pipefail",
        'cd "${SLURM_SUBMIT_DIR:-.}"',
        "# activate the Python environment that has SSL Workbench's dependencies here, e.g.",
        "# source .venv/bin/activate",
        'HEAD_NODE=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)',
        f"export OMP_NUM_THREADS={max(1, cpus_per_task // max(1, gpus_per_node))}",
        f"srun {line}",
        "",
    ])


__all__ = ["config_to_command", "torchrun_command", "slurm_script"]
