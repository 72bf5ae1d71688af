"""engine.worker: the service loop (requests, progress, cancel, previews) and the training entry point.

The service loop runs in a thread with plain queues here (the same code the spawned process runs),
so these tests cost no process start-up.
"""

from __future__ import annotations

import queue
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from engine import messages as M
from engine.rpc import Request
from engine.worker import service_main, train_process


class Service:
    def __init__(self):
        self.req, self.resp = queue.Queue(), queue.Queue()
        self.thread = threading.Thread(target=service_main, args=(self.req, self.resp), daemon=True)
        self.thread.start()
        first = self.resp.get(timeout=120)
        assert first.kind == "status" and first.data["state"] == "ready"
        self.ids = iter(range(1, 10_000))

    def send(self, name, args=None) -> int:
        rid = next(self.ids)
        self.req.put(Request(rid, name, args or {}))
        return rid

    def wait(self, rid, timeout=120.0):
        """(final kind, payload, progress messages) of request ``rid``."""
        progress = []
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            reply = self.resp.get(timeout=max(0.1, end - time.monotonic()))
            if reply.id != rid:
                continue
            if reply.kind == "progress":
                progress.append(reply)
                continue
            return reply.kind, reply.data, progress
        raise TimeoutError(rid)

    def close(self):
        self.req.put(None)
        self.thread.join(10)


@pytest.fixture(scope="module")
def service():
    s = Service()
    yield s
    s.close()


def test_catalogue_lists_methods_backbones_and_augmentations(service):
    kind, cat, _ = service.wait(service.send("catalogue"))
    assert kind == "result"
    names = [m["name"] for m in cat["methods"]]
    from engine.methods import METHODS

    assert names == list(METHODS)
    mae = next(m for m in cat["methods"] if m["name"] == "mae")
    assert any(o["name"] == "mask_ratio" for o in mae["options"])
    assert "small_cnn" in [b["name"] for b in cat["backbones"]]
    assert {s["name"] for s in cat["augment"]} >= {"crop_scale_min", "blur_p", "jitter_p"}
    assert set(cat["augment_presets"]["small"]) >= {"simclr", "byol"}
    assert cat["device"] in ("cpu", "cuda", "mps")


def test_validate_config_names_the_wrong_field(service):
    from app.models.config_model import default_run_config

    good = default_run_config()
    kind, res, _ = service.wait(service.send("validate_config", {"config": good}))
    assert kind == "result" and res == {"ok": True, "errors": []}
    bad = default_run_config()
    bad["optim"]["lr"] = -1.0
    _, res, _ = service.wait(service.send("validate_config", {"config": bad}))
    assert not res["ok"] and res["errors"][0]["path"] == "optim.lr"
    vit = default_run_config()
    vit.update(method="mae", backbone="small_cnn", method_options={})  # the demo options are SimCLR's
    _, res, _ = service.wait(service.send("validate_config", {"config": vit}))
    assert res["errors"][0]["path"] == "backbone" and "ViT" in res["errors"][0]["message"].replace("VIT", "ViT")
    missing = default_run_config()
    missing["data"]["spec"] = "/no/such/folder"
    _, res, _ = service.wait(service.send("validate_config", {"config": missing}))
    assert res["errors"][0]["path"] == "data.spec" and "does not exist" in res["errors"][0]["message"]


def test_load_dataset_writes_a_memory_mappable_array(service, tmp_path, cifar_small):
    kind, res, progress = service.wait(service.send("load_dataset", {"spec": str(cifar_small / "val"),
                                                                     "image_size": 24}))
    assert kind == "result", res
    images = np.load(res["images_path"], mmap_mode="r")
    assert images.shape == (res["count"], 24, 24, 3) and images.dtype == np.uint8
    assert res["labels"].shape == (res["count"],)
    assert res["class_names"] and len(res["class_names"]) == len(set(res["labels"].tolist()))
    assert len(res["paths"]) == res["count"]
    assert progress and all(isinstance(p, M.Progress) for p in progress)
    # the same decoded pixels the engine trains on
    from engine.data import load_dataset

    data = load_dataset(str(cifar_small / "val"), 24)
    np.testing.assert_array_equal(images[:5], data.images[:5].permute(0, 2, 3, 1).numpy())


def test_load_errors_are_user_messages(service, tmp_path):
    kind, err, _ = service.wait(service.send("load_dataset", {"spec": str(tmp_path / "nope"), "image_size": 32}))
    assert kind == "error" and "does not exist" in err["message"] and not err["traceback"]
    (tmp_path / "empty").mkdir()
    kind, err, _ = service.wait(service.send("load_dataset", {"spec": str(tmp_path / "empty"), "image_size": 32}))
    assert kind == "error" and "no images" in err["message"]


def test_cancel_stops_a_long_request(service):
    rid = service.send("sleep", {"seconds": 30})
    time.sleep(0.2)
    t0 = time.monotonic()
    service.req.put(Request(0, "cancel", {"id": rid}))
    kind, _, _ = service.wait(rid, timeout=10)
    assert kind == "cancelled" and time.monotonic() - t0 < 5


def test_preview_is_plain_data_and_reproducible(service):
    from engine.data import load_dataset

    imgs = load_dataset("builtin:shapes:32", 32).images[:3].permute(0, 2, 3, 1).numpy()
    args = {"method": "mae", "images": imgs, "seed": 7, "options": {"mask_ratio": 0.5}}
    _, a, _ = service.wait(service.send("preview", args))
    _, b, _ = service.wait(service.send("preview", args))
    _, c, _ = service.wait(service.send("preview", dict(args, seed=8)))
    assert a["kind"] == "mask" and len(a["rows"]) == 3
    tile = a["rows"][0]["tiles"][1]
    assert isinstance(tile["image"], np.ndarray) and tile["image"].dtype == np.uint8
    assert "32 of 64" in tile["caption"]  # 50 % of an 8x8 patch grid
    same = all(np.array_equal(x["image"], y["image"]) for rx, ry in zip(a["rows"], b["rows"])
               for x, y in zip(rx["tiles"], ry["tiles"]))
    assert same
    differs = any(not np.array_equal(x["image"], y["image"]) for rx, ry in zip(a["rows"], c["rows"])
                  for x, y in zip(rx["tiles"], ry["tiles"]))
    assert differs
    kind, err, _ = service.wait(service.send("preview", {"method": "nope", "images": imgs}))
    assert kind == "error" and "unknown method" in err["message"]


def test_preview_answers_hold_no_engine_classes(service):
    """The window unpickles these answers: nothing in them may need torch or engine.preview."""
    import pickle

    from engine.data import load_dataset

    imgs = load_dataset("builtin:shapes:16", 32).images[:2].permute(0, 2, 3, 1).numpy()
    _, res, _ = service.wait(service.send("preview", {"method": "jigsaw", "images": imgs, "seed": 1}))
    blob = pickle.dumps(res)
    code = ("import pickle, sys; pickle.loads(sys.stdin.buffer.read()); "
            "print('torch' in sys.modules, 'engine.preview' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], input=blob, capture_output=True, timeout=60)
    assert out.stdout.decode().split() == ["False", "False"], out.stderr.decode()


def test_train_process_reports_a_bad_config_as_run_failed(tmp_path):
    from app.models.config_model import default_run_config

    cfg = default_run_config()
    cfg["method_options"] = {"no_such_option": 1}
    out, cmd = queue.Queue(), queue.Queue()
    train_process(cfg, str(tmp_path / "run"), False, out, cmd)
    msg = out.get(timeout=5)
    assert isinstance(msg, M.RunFailed) and "no_such_option" in msg.error
