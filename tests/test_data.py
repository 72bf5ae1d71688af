import io
import struct
import threading

import numpy as np
import pytest
import torch
from PIL import Image

from engine.data import DataError, load_dataset
from engine.data.base import Cancelled, stratified_split
from engine.data.decode import decode_image
from engine.data.shapes import (
    BG_TONES,
    FG_HUES,
    SHAPES,
    TYPICAL_HUES,
    TYPICAL_P,
    _hsv_to_rgb,
    generate_shapes,
)


def test_shapes_deterministic_and_sized():
    a, la = generate_shapes(40, 32, seed=3)
    b, lb = generate_shapes(40, 32, seed=3)
    c, _ = generate_shapes(40, 32, seed=4)
    assert a.shape == (40, 3, 32, 32) and a.dtype == torch.uint8
    assert torch.equal(a, b) and torch.equal(la, lb)
    assert not torch.equal(a, c)
    assert set(la.tolist()) == set(range(len(SHAPES)))
    big, _ = generate_shapes(8, 96, seed=0)
    assert big.shape == (8, 3, 96, 96)


def test_builtin_spec_has_a_disjoint_test_split():
    d = load_dataset("builtin:shapes:200", 32)
    assert len(d) == 200 and d.labelled and d.class_names == list(SHAPES)
    t = load_dataset(d.eval_source, 32)
    assert t.labelled and len(t) >= 200 // 5
    assert not torch.equal(d.images[:10], t.images[:10])
    with pytest.raises(DataError, match="count"):
        load_dataset("builtin:shapes:abc", 32)
    with pytest.raises(DataError, match="unknown built-in"):
        load_dataset("builtin:circles", 32)


def _crop_colour_retrieval(images: torch.Tensor) -> float:
    """How often the mean colour of one random crop of an image finds another crop of the same
    image among all images: what SimCLR's views share when colour jitter is weak."""
    from engine.augment import AugmentConfig, augment

    cfg = AugmentConfig(crop_scale_min=0.4, jitter_p=0.0, gray_p=0.0)
    x = images.float() / 255
    a = augment(x, cfg, torch.Generator().manual_seed(1)).mean(dim=(2, 3))
    b = augment(x, cfg, torch.Generator().manual_seed(2)).mean(dim=(2, 3))
    nearest = torch.cdist(a, b).argmin(dim=1)
    return (nearest == torch.arange(len(x))).float().mean().item()


def test_shapes_shortcut_colour_makes_colour_identify_the_image():
    """Default: a few foreground colours and background tones, independent of the class, shared by
    many images. ``?shortcut=colour``: every image has its own colours, so colour finds the image."""
    plain = load_dataset("builtin:shapes:400", 32)
    short = load_dataset("builtin:shapes:400?shortcut=colour", 32)
    assert short.source == "builtin:shapes:400?shortcut=colour" and plain.source == "builtin:shapes:400"
    assert short.eval_source.endswith("?shortcut=colour") and "shortcut" not in plain.eval_source
    assert torch.equal(plain.labels, short.labels) and not torch.equal(plain.images, short.images)
    assert load_dataset(short.eval_source, 32).source == short.eval_source
    assert load_dataset("builtin:shapes?shortcut=color", 16, max_images=50).source.endswith("?shortcut=colour")
    found_short, found_plain = _crop_colour_retrieval(short.images), _crop_colour_retrieval(plain.images)
    assert found_short > 0.35 and found_plain < 0.22 and found_short > 2 * found_plain
    # the default set's backgrounds: one of a few tones each, every tone behind (nearly) every class
    corner = plain.images[:, :, :3, :3].float().mean(dim=(2, 3))
    tones = torch.stack([_hsv_to_rgb(torch.tensor(h), torch.tensor(s), torch.tensor(v))
                         for h, s, v in BG_TONES]) * 255
    dist = torch.cdist(corner, tones)
    assert dist.min(dim=1).values.max() < 20
    nearest = dist.argmin(dim=1)
    for t in range(len(BG_TONES)):
        assert len(set(plain.labels[nearest == t].tolist())) == len(SHAPES)
    for bad, match in (("builtin:shapes:100?shortcut=texture", "shortcut must be one of"),
                       ("builtin:shapes:100?colour", "takes the options"),
                       ("builtin:shapes:100?colours=vivid", "colours must be one of"),
                       ("builtin:shapes:100?colours=typical&shortcut=colour", "choose one")):
        with pytest.raises(DataError, match=match):
            load_dataset(bad, 32)


def _foreground_hue_and_luma(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Each image's foreground colour, read from its pixels: the index into FG_HUES nearest to the hue of its
    most saturated pixels (backgrounds are greyish), and their luma (0..1)."""
    x = images.float().permute(0, 2, 3, 1).reshape(len(images), -1, 3) / 255
    mx, mn = x.max(-1).values, x.min(-1).values
    sat = (mx - mn) / mx.clamp(min=1e-3)
    top = sat.topk(12, dim=1).indices
    px = torch.gather(x, 1, top.unsqueeze(-1).expand(-1, -1, 3)).mean(1)  # (N, 3)
    r, g, b = px.unbind(-1)
    hue = torch.atan2(3 ** 0.5 * (g - b), 2 * r - g - b) / (2 * torch.pi) % 1.0
    d = (hue[:, None] - torch.tensor(FG_HUES)[None]).abs()
    d = torch.minimum(d, 1 - d)
    return d.argmin(1), px @ torch.tensor([0.299, 0.587, 0.114])


def test_shapes_colours_typical_make_colour_depend_on_the_shape_without_naming_it():
    """``?colours=typical``: each shape takes one of its two typical hues with probability TYPICAL_P (any hue
    otherwise), so a shape's typical hues come up far more often than by chance, yet a hue is typical of
    several shapes and colour alone cannot name the shape; the lightness does not give the hue away. The
    default set's hues do not depend on the shape."""
    typ = load_dataset("builtin:shapes:800?colours=typical", 32)
    plain = load_dataset("builtin:shapes:800", 32)
    assert typ.source == "builtin:shapes:800?colours=typical" and typ.eval_source.endswith("?colours=typical")
    assert torch.equal(typ.labels, plain.labels) and "typical" in typ.name
    expected = TYPICAL_P + (1 - TYPICAL_P) * 2 / len(FG_HUES)  # its typical pair, drawn or by chance
    for data, want in ((typ, expected), (plain, 2 / len(FG_HUES))):
        hue, luma = _foreground_hue_and_luma(data.images)
        pairs = torch.tensor(TYPICAL_HUES)[data.labels]
        in_pair = (hue[:, None] == pairs).any(1).float()
        for k in range(len(SHAPES)):
            assert abs(float(in_pair[data.labels == k].mean()) - want) < 0.12, (k, want)
        # the best guess of the shape from the hue alone
        joint = torch.zeros(len(FG_HUES), len(SHAPES)).index_put_((hue, data.labels), torch.ones(len(hue)),
                                                                  accumulate=True)
        assert float(joint.max(1).values.sum()) / len(hue) < 0.45
    hue, luma = _foreground_hue_and_luma(typ.images)
    means = torch.stack([luma[hue == h].mean() for h in range(len(FG_HUES))])
    assert float(means.max() - means.min()) < 0.08  # every hue at the same lightness, on average
    _, plain_luma = _foreground_hue_and_luma(plain.images)
    plain_hue = _foreground_hue_and_luma(plain.images)[0]
    plain_means = torch.stack([plain_luma[plain_hue == h].mean() for h in range(len(FG_HUES))])
    assert float(plain_means.max() - plain_means.min()) > 0.2  # the default: yellow is light, red dark


def test_shapes_shortcut_light_says_where_up_is_and_the_default_does_not():
    """Default: flat backgrounds and unshaded shapes, so only a shape's own outline says where "up" is.
    ``?shortcut=light``: lit from above (the background darkens downwards, shapes are shaded at their
    bottom), so brightness alone tells an upright image from one turned upside down."""
    plain = load_dataset("builtin:shapes:400", 32)
    lit = load_dataset("builtin:shapes:400?shortcut=light", 32)
    assert lit.source == "builtin:shapes:400?shortcut=light" and lit.eval_source.endswith("?shortcut=light")
    assert torch.equal(plain.labels, lit.labels)

    def top_minus_bottom(images):  # mean brightness of the top rows minus the bottom rows, per image
        x = images.float().mean(dim=1)
        return x[:, :6].mean(dim=(1, 2)) - x[:, -6:].mean(dim=(1, 2))

    d_lit, d_plain = top_minus_bottom(lit.images), top_minus_bottom(plain.images)
    # lit: nearly every image is brighter at the top; plain: no side wins (the shapes' own outlines
    # make either side brighter in some images)
    assert (d_lit > 0).float().mean() > 0.95 and d_lit.mean() > 10
    assert 0.3 < (d_plain > 0).float().mean() < 0.7 and abs(float(d_plain.mean())) < 3


def _save(path, arr, mode=None, fmt=None):
    img = Image.fromarray(arr, mode) if mode else Image.fromarray(arr)
    img.save(path, format=fmt)


def test_folder_with_classes_and_every_image_kind(tmp_path):
    rng = np.random.default_rng(0)
    (tmp_path / "cats").mkdir()
    (tmp_path / "dogs").mkdir()
    rgb = rng.integers(0, 255, (40, 50, 3), dtype=np.uint8)
    _save(tmp_path / "cats" / "a.jpg", rgb)
    _save(tmp_path / "cats" / "b.png", rng.integers(0, 255, (20, 20), dtype=np.uint8), "L")  # grayscale
    Image.fromarray(rgb).convert("P").save(tmp_path / "cats" / "c.png")  # palette
    rgba = np.dstack([rgb, np.full((40, 50), 128, np.uint8)])
    _save(tmp_path / "dogs" / "d.png", rgba, "RGBA")
    Image.fromarray(rng.integers(0, 65535, (30, 30), dtype=np.uint16)).save(tmp_path / "dogs" / "e.png")  # 16-bit
    _save(tmp_path / "dogs" / "f.bmp", rgb)
    _save(tmp_path / "dogs" / "g.webp", rgb)
    _save(tmp_path / "dogs" / "h.tif", rgb)
    # bad files: not an image, truncated JPEG, empty file
    (tmp_path / "dogs" / "bad.jpg").write_bytes(b"this is not a jpeg")
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buf, format="JPEG")
    (tmp_path / "dogs" / "trunc.jpg").write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    (tmp_path / "cats" / "empty.png").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("ignored")

    d = load_dataset(str(tmp_path), 24, use_cache=False)
    assert d.class_names == ["cats", "dogs"]
    assert len(d) == 8 and d.images.shape == (8, 3, 24, 24)
    assert sorted(d.labels.tolist()) == [0, 0, 0, 1, 1, 1, 1, 1]
    skipped = {p.split("/")[-1]: r for p, r in d.skipped}
    assert set(skipped) == {"bad.jpg", "trunc.jpg", "empty.png"}
    assert all(r for r in skipped.values())
    assert any("skipped 3" in n for n in d.notes)
    # 16-bit image is scaled, not clipped to white
    e = decode_image(tmp_path / "dogs" / "e.png", 24)
    assert 40 < e.mean() < 215


def test_flat_folder_is_unlabeled(tmp_path):
    for i in range(5):
        _save(tmp_path / f"{i}.png", np.full((10, 12, 3), i * 40, np.uint8))
    d = load_dataset(str(tmp_path), 16, use_cache=False)
    assert d.labels is None and not d.labelled and len(d) == 5
    assert any("unlabeled" in n for n in d.notes)


def test_empty_missing_and_unreadable_folders(tmp_path):
    with pytest.raises(DataError, match="holds no images"):
        load_dataset(str(tmp_path), 32)
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(str(tmp_path / "nope"), 32)
    (tmp_path / "x.jpg").write_bytes(b"garbage")
    with pytest.raises(DataError, match="could be read"):
        load_dataset(str(tmp_path), 32, use_cache=False)
    f = tmp_path / "file.png"
    f.write_bytes(b"")
    with pytest.raises(DataError, match="not a folder"):
        load_dataset(str(f), 32)


def test_folder_cache_and_cancel(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for i in range(6):
        _save(tmp_path / ("a" if i % 2 else "b") / f"{i}.png", np.full((8, 8, 3), i * 30, np.uint8))
    seen = []
    d1 = load_dataset(str(tmp_path), 8, progress=lambda done, total, msg: seen.append((done, total)))
    d2 = load_dataset(str(tmp_path), 8)
    assert torch.equal(d1.images, d2.images) and seen
    ev = threading.Event()
    ev.set()
    (tmp_path / "a" / "new.png").write_bytes(b"")  # invalidates the cache key
    with pytest.raises(Cancelled):
        load_dataset(str(tmp_path), 8, cancel=ev)


def test_train_val_layout(cifar_small):
    d = load_dataset(str(cifar_small), 32, max_images=50)
    assert d.eval_source.endswith("val") and len(d) == 50
    assert d.class_names[0] == "airplane"


def test_stratified_split_keeps_classes():
    labels = torch.arange(100) % 4
    tr, ho = stratified_split(labels, 100, 0.2, seed=0)
    assert len(set(tr) & set(ho)) == 0 and len(tr) + len(ho) == 100
    assert np.bincount(labels[ho].numpy()).tolist() == [5, 5, 5, 5]


# -- torchvision ------------------------------------------------------------------------------------
def _idx_images(n, h, w, rng):
    return struct.pack(">IIII", 0x803, n, h, w) + rng.integers(0, 255, (n, h, w), dtype=np.uint8).tobytes()


def _idx_labels(labels):
    return struct.pack(">II", 0x801, len(labels)) + bytes(labels)


def _write_fake_mnist(root, name="MNIST", n=30):
    rng = np.random.default_rng(0)
    raw = root / name / "raw"
    raw.mkdir(parents=True)
    (raw / "train-images-idx3-ubyte").write_bytes(_idx_images(n, 28, 28, rng))
    (raw / "train-labels-idx1-ubyte").write_bytes(_idx_labels([i % 10 for i in range(n)]))
    (raw / "t10k-images-idx3-ubyte").write_bytes(_idx_images(10, 28, 28, rng))
    (raw / "t10k-labels-idx1-ubyte").write_bytes(_idx_labels(list(range(10))))


@pytest.mark.parametrize("name,folder", [("mnist", "MNIST"), ("fashionmnist", "FashionMNIST")])
def test_torchvision_from_disk(tmp_path, name, folder):
    _write_fake_mnist(tmp_path, folder)
    d = load_dataset(f"torchvision:{name}:{tmp_path}", 32)
    assert len(d) == 30 and d.images.shape == (30, 3, 32, 32) and d.labelled
    assert d.eval_source.startswith(f"torchvision:{name}@test")
    t = load_dataset(d.eval_source, 32)
    assert len(t) == 10


def test_torchvision_offline_message(tmp_path):
    with pytest.raises(DataError) as info:
        load_dataset(f"torchvision:cifar10:{tmp_path}", 32)
    msg = str(info.value)
    assert "cifar-10-batches-py" in msg and str(tmp_path) in msg and "download" in msg
    with pytest.raises(DataError, match="unknown torchvision dataset"):
        load_dataset("torchvision:imagenet", 32)
    with pytest.raises(DataError, match="no split"):
        load_dataset(f"torchvision:stl10@bogus:{tmp_path}", 32)


def test_torchvision_download_from_a_local_server(tmp_path, monkeypatch):
    """The download path is real: torchvision fetches (and checks) files from a mirror we serve."""
    import gzip
    import hashlib
    import http.server

    import torchvision.datasets as tvd

    src = tmp_path / "src"
    _write_fake_mnist(src)
    serve = tmp_path / "serve"
    serve.mkdir()
    resources = []
    for f in sorted((src / "MNIST" / "raw").iterdir()):
        gz = serve / (f.name + ".gz")
        gz.write_bytes(gzip.compress(f.read_bytes()))
        resources.append((gz.name, hashlib.md5(gz.read_bytes()).hexdigest()))

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **k):
            super().__init__(*a, directory=str(serve), **k)

        def log_message(self, *a):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
    th = threading.Thread(target=server.serve_forever, daemon=True)
    th.start()
    try:
        monkeypatch.setattr(tvd.MNIST, "mirrors", [f"http://127.0.0.1:{server.server_address[1]}/"])
        monkeypatch.setattr(tvd.MNIST, "resources", resources)
        root = tmp_path / "dl"
        with pytest.raises(DataError, match="download"):
            load_dataset(f"torchvision:mnist:{root}", 32)
        d = load_dataset(f"torchvision:mnist:{root}", 32, download=True)
        assert len(d) == 30 and (root / "MNIST" / "raw" / "train-images-idx3-ubyte").exists()
    finally:
        server.shutdown()


def _streamed_folder(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(50):
        d = tmp_path / f"c{i % 2}"
        d.mkdir(exist_ok=True)
        _save(d / f"{i}.png", rng.integers(0, 255, (100, 120, 3), dtype=np.uint8))
    (tmp_path / "c0" / "broken.png").write_bytes(b"nope")
    return load_dataset(str(tmp_path), 96, use_cache=False)


def _same_images(st, mem, got) -> bool:
    imgs = torch.cat([b[0] for b in got])
    idx = torch.cat([b[2] for b in got])
    ref = {p: mem.images[k] for k, p in enumerate(mem.paths)}
    return len(imgs) == 50 and all(torch.equal(imgs[k], ref[st.paths[i]]) for k, i in enumerate(idx.tolist()))


def test_large_folders_stream_from_decoded_shards_with_the_same_images(tmp_path):
    mem = _streamed_folder(tmp_path)
    st = load_dataset(str(tmp_path), 96, memory_limit_mb=1, workers=0)  # 50 x 96 x 96 x 3 > 1 MB
    assert st.streaming and not mem.streaming and st.labelled
    # the broken file is found when the shards are written, as in memory: left out and reported
    assert len(st) == 50 and [p.split("/")[-1] for p, _ in st.skipped] == ["broken.png"]
    assert st.paths == mem.paths and torch.equal(st.labels, mem.labels)
    order = st.reading_order(torch.randperm(len(st), generator=torch.Generator().manual_seed(0)))
    assert sorted(order.tolist()) == list(range(50))
    assert _same_images(st, mem, list(st.batches(10, order, drop_last=False)))
    assert torch.equal(st.get([7, 3]), mem.images[[7, 3]])
    assert torch.equal(st.subset([4, 1]).images, mem.images[[4, 1]])


def test_large_folders_stream_file_by_file_without_the_cache(tmp_path):
    mem = _streamed_folder(tmp_path)
    st = load_dataset(str(tmp_path), 96, memory_limit_mb=1, workers=0, use_cache=False)
    assert st.streaming and len(st) == 51
    got = list(st.batches(10, torch.arange(len(st)), drop_last=False))
    assert _same_images(st, mem, got)  # the broken file is dropped from its batch and reported
    assert [p.split("/")[-1] for p, _ in st.skipped] == ["broken.png"]


def test_shapes_come_back_from_the_cache_and_a_bad_cache_is_redrawn(tmp_path, monkeypatch):
    """The built-in shapes are kept in the cache folder (the service, the training process and the next
    run ask for the same images): the second load reads the file instead of drawing, and a corrupt or
    wrongly shaped file is drawn again, not believed."""
    import engine.data.shapes as shapes_mod

    monkeypatch.setenv("SSLWB_CACHE_DIR", str(tmp_path))
    drawn = []
    real = shapes_mod.generate_shapes

    def counting(*a, **k):
        drawn.append(a)
        return real(*a, **k)

    monkeypatch.setattr(shapes_mod, "generate_shapes", counting)
    first = shapes_mod.load_shapes(48, 32, "train")
    files = list((tmp_path / "shapes").glob("shapes-48-32-*.npz"))
    assert len(drawn) == 1 and len(files) == 1
    again = shapes_mod.load_shapes(48, 32, "train")
    assert len(drawn) == 1  # from the file
    assert torch.equal(again.images, first.images) and torch.equal(again.labels, first.labels)
    assert torch.equal(again.images, real(48, 32, 1000)[0])  # the same images the generator draws
    files[0].write_bytes(b"not an npz")
    assert torch.equal(shapes_mod.load_shapes(48, 32, "train").images, first.images)
    assert len(drawn) == 2
    import numpy as np

    np.savez(files[0], images=np.zeros((5, 3, 32, 32), np.uint8), labels=np.zeros(5, np.int64))
    assert torch.equal(shapes_mod.load_shapes(48, 32, "train").images, first.images)
    assert len(drawn) == 3
    stale = tmp_path / "shapes" / "shapes-48-32-1000-none-000000000000.npz"  # an older drawing code's file
    stale.write_bytes(b"old")
    shapes_mod.load_shapes(16, 32, "train")  # a new file is written: the stale one goes
    assert not stale.exists() and files[0].exists()


@pytest.mark.parametrize("spec", ["builtin:clips:abc", "builtin:clips:5", "builtin:nope", "builtin:shapes:10",
                                  "builtin:shapes-test:40?shortcut=blue", "shapes:x"])
def test_a_bad_builtin_spec_gets_one_message_from_the_check_the_form_and_loading(spec):
    from engine.data import DataError, check_dataset, load_dataset
    from engine.worker import _check_spec

    with pytest.raises(DataError) as loading:
        load_dataset(spec, 16)
    with pytest.raises(DataError) as checking:
        check_dataset(spec, 16)
    form = _check_spec(spec, "data.spec")
    assert str(checking.value) == str(loading.value) == form.message, spec


@pytest.mark.parametrize("spec", ["builtin:clips:16", "builtin:shapes-test:40?shortcut=colour", "shapes"])
def test_a_good_builtin_spec_passes_the_check_and_the_form(spec):
    from engine.data import check_dataset
    from engine.worker import _check_spec

    assert check_dataset(spec, 16)["labelled"] is True and _check_spec(spec, "data.spec") is None
