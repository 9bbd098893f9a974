"""The embedding pipeline's pixel batch path (uint8 pixels per image, float normalisation once per batch)
against the per-image transform as it was before that path existed: the same bits for every kind of stored
image, and text untouched."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from app.backbones.base import Preprocessing
from app.backbones.cards import replace_spec
from app.backbones.catalogue import LoadContext, create_adapter, load_card
from app.backbones.preprocess import ImageTransform
from app.datasets.stored import Manifest, StoredDataset, write_dataset, write_samples
from app.embeddings import EmbedOptions, embed_samples
from app.embeddings.pipeline import _Collate, _loader_inputs, _PixelBatch, _StoredPixels
from app.storage import ArtifactStore
from tests.kits.backbones import make_stored_dataset, tiny_hf_text, tiny_hf_vision, zoo_card

_RNG = np.random.default_rng(7)


def _rgb(h: int, w: int) -> np.ndarray:
    return _RNG.integers(0, 256, (h, w, 3), dtype=np.uint8)


# -- the reference: the per-image path as it was ------------------------------------------------------------
def _old_image(data: bytes) -> Image.Image:  # StoredDataset.image
    with Image.open(io.BytesIO(data)) as img:
        return img.convert("RGB")


def _old_transform(tf: ImageTransform, image: Image.Image) -> torch.Tensor:  # ImageTransform.__call__
    mode = "L" if tf.channels == 1 else "RGB"
    if image.mode != mode:
        image = image.convert(mode)
    w, h = image.size
    if not ((w, h) == (tf.width, tf.height) and tf.crop_pct == 1.0):
        resample = getattr(Image.Resampling, tf.interpolation.upper())
        target_h, target_w = int(tf.height / tf.crop_pct), int(tf.width / tf.crop_pct)
        ratio = max(target_h / h, target_w / w)
        new_w, new_h = max(tf.width, round(w * ratio)), max(tf.height, round(h * ratio))
        image = image.resize((new_w, new_h), resample)
        left, top = (new_w - tf.width) // 2, (new_h - tf.height) // 2
        image = image.crop((left, top, left + tf.width, top + tf.height))
    array = np.asarray(image, dtype=np.uint8)
    if array.ndim == 2:
        array = array[:, :, None]
    tensor = torch.from_numpy(np.array(array.transpose(2, 0, 1))).float()  # (a writable copy)
    return tensor.mul_(tf.scale).add_(tf.shift)


# -- encoders for what PIL does not write ---------------------------------------------------------------------
def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png(array: np.ndarray, *, depth: int = 8, interlace: bool = False, before_idat: bytes = b"") -> bytes:
    """A truecolour PNG by hand: 8- or 16-bit, optionally Adam7-interlaced, with chunks before IDAT."""
    h, w, _ = array.shape
    pixels = array.astype(">u2") if depth == 16 else array
    passes = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))
    raw = b""
    for x0, y0, dx, dy in passes if interlace else ((0, 0, 1, 1),):
        sub = pixels[y0::dy, x0::dx]
        if sub.size:
            raw += b"".join(b"\x00" + row.tobytes() for row in sub)
    header = struct.pack(">IIBBBBB", w, h, depth, 2, 0, 0, 1 if interlace else 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + before_idat + _chunk(b"IDAT", zlib.compress(raw))
            + _chunk(b"IEND", b""))


def _pil(image: Image.Image, fmt: str = "PNG", **kwargs) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


def _samples() -> dict[str, bytes]:
    """Every kind of image a stored dataset may hold (ingest keeps 8-bit RGB JPEG/PNG, 16-bit RGB PNGs
    included, and re-encodes the rest as plain RGB PNG; older or hand-written stores may hold anything)."""
    return {
        "plain 32x32": _pil(Image.fromarray(_rgb(32, 32))),
        "plain 32x32 again": _pil(Image.fromarray(_rgb(32, 32))),
        "plain 48x40": _pil(Image.fromarray(_rgb(40, 48))),
        "plain 20x64": _pil(Image.fromarray(_rgb(64, 20))),
        "plain 9x7": _pil(Image.fromarray(_rgb(7, 9))),
        "hand-made plain": _png(_rgb(33, 31)),
        "interlaced": _png(_rgb(37, 29), interlace=True),
        "16-bit": _png(_RNG.integers(0, 65536, (30, 34, 3), dtype=np.uint16), depth=16),
        "pHYs first": _pil(Image.fromarray(_rgb(32, 32)), dpi=(72, 72)),
        "tRNS": _pil(Image.fromarray(_rgb(32, 32)), transparency=(1, 2, 3)),
        "gAMA first": _png(_rgb(32, 32), before_idat=_chunk(b"gAMA", struct.pack(">I", 45455))),
        "jpeg 32x32": _pil(Image.fromarray(_rgb(32, 32)), "JPEG", quality=90),
        "jpeg 45x30": _pil(Image.fromarray(_rgb(30, 45)), "JPEG", quality=75),
        "grey": _pil(Image.fromarray(_RNG.integers(0, 256, (32, 32), dtype=np.uint8), "L")),
        "rgba": _pil(Image.fromarray(_RNG.integers(0, 256, (32, 40, 4), dtype=np.uint8), "RGBA")),
        "palette": _pil(Image.fromarray(_rgb(32, 32)).convert("P", palette=Image.Palette.ADAPTIVE, colors=16)),
    }


PREPROCESSINGS = [
    Preprocessing(input_size=(3, 32, 32), mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)),
    Preprocessing(input_size=(3, 24, 28), mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225),
                  interpolation="bicubic", crop_pct=0.875),
    Preprocessing(input_size=(3, 32, 32), interpolation="nearest", crop_pct=0.9),
    Preprocessing(input_size=(1, 16, 16), mean=(0.3,), std=(0.7,), interpolation="lanczos"),
]


@pytest.mark.parametrize("pre", PREPROCESSINGS, ids=lambda p: f"{p.input_size}-{p.interpolation}-{p.crop_pct}")
def test_transform_and_batch_equal_the_old_per_image_transform_bit_for_bit(pre):
    tf = ImageTransform(pre)
    images = [_old_image(data) for data in _samples().values()]
    old = [_old_transform(tf, image) for image in images]
    for image, expected in zip(images, old, strict=True):
        got = tf(image)
        assert got.dtype == torch.float32 and got.shape == expected.shape and got.is_contiguous()
        assert torch.equal(got, expected)
    batch = tf.batch([tf.pixels(image) for image in images])
    assert batch.is_contiguous() and torch.equal(batch, torch.stack(old))
    # modes other than RGB go through the same conversion as before
    for mode in ("L", "RGBA", "P", "LA", "I;16"):
        image = images[0].convert(mode)
        assert torch.equal(tf(image), _old_transform(tf, image)), mode


def test_batch_refuses_pixels_of_the_wrong_size():
    tf = ImageTransform(PREPROCESSINGS[0])
    with pytest.raises(ValueError, match="32×32×3"):
        tf.batch([bytes(32 * 32 * 3), bytes(5)])
    assert tf.batch([]).shape == (0, 3, 32, 32)


def _stored(tmp_path, samples: list[bytes]) -> StoredDataset:
    store = ArtifactStore(str(tmp_path / "artifacts"))
    with write_samples(store, "datasets/mixed") as writer:
        for data in samples:
            writer.add(data)
    n = len(samples)
    manifest = Manifest(modality="image", task_type="classification", num_samples=n, classes=["a", "b"])
    write_dataset(store, "datasets/mixed", manifest, (np.arange(n) % 2).astype(np.int64),
                  {"train": np.arange(0, n, 2), "val": np.arange(1, n, 2)})
    return StoredDataset(store, "datasets/mixed")


@pytest.fixture
def zoo(tmp_path):
    spec = load_card(zoo_card(tmp_path / "models"))
    return spec, LoadContext(models_dir=tmp_path / "models")


@pytest.mark.parametrize("pre", PREPROCESSINGS[:3], ids=["same-size", "bicubic-crop", "nearest-crop"])
def test_pipeline_equals_the_old_per_image_path_on_every_kind_of_stored_image(tmp_path, zoo, pre):
    spec, ctx = zoo
    adapter = create_adapter(replace_spec(spec, preprocessing=pre), ctx)
    samples = list(_samples().values()) * 2
    stored = _stored(tmp_path, samples)
    for i, data in enumerate(samples):
        image = stored.image(i)
        assert image.mode == "RGB" and np.array_equal(np.asarray(image), np.asarray(_old_image(data)))
    dataset = stored.torch_dataset("all", adapter.transform)
    items, collate = _loader_inputs(adapter, dataset)
    assert isinstance(items, _StoredPixels) and isinstance(collate, _PixelBatch)
    old = torch.stack([_old_transform(adapter.transform, _old_image(data)) for data in samples])
    # the batches themselves: the same bits as stacking the old per-image tensors
    batches = [collate([items[k] for k in range(start, min(start + 5, len(items)))]) for start in range(0, len(items), 5)]
    assert torch.equal(torch.cat(batches), old)
    layers = ["stage2", "pool"]
    expected = adapter.embed(old, layers)
    for options in (EmbedOptions(batch_size=7, device="cpu"), EmbedOptions(batch_size=7, device="cpu", prefetch=0),
                    EmbedOptions(batch_size=7, device="cpu", num_workers=2)):
        out = embed_samples(adapter, dataset, layers, options=options)
        for layer in layers:
            np.testing.assert_allclose(out[layer], expected[layer].numpy(), atol=1e-5, rtol=0)
    # a split (indices not 0..n-1) reads the right samples
    train = stored.torch_dataset("train", adapter.transform)
    out = embed_samples(adapter, train, ["pool"], options=EmbedOptions(batch_size=4, device="cpu"))
    np.testing.assert_allclose(out["pool"], expected["pool"].numpy()[stored.split("train")], atol=1e-5, rtol=0)


def test_hf_vision_takes_the_pixel_path_and_hf_text_is_untouched(tmp_path):
    from app.backbones.catalogue import describe_backbone

    ctx = LoadContext(models_dir=tmp_path, hub_cache_dir=tmp_path / "hub")
    vision = create_adapter(describe_backbone(f"hf:{tiny_hf_vision(tmp_path)}", ctx), ctx)
    text = create_adapter(describe_backbone(f"hf:{tiny_hf_text(tmp_path)}", ctx), ctx)
    store = ArtifactStore(str(tmp_path / "artifacts"))
    images = make_stored_dataset(store, "datasets/i", n=9, size=40)
    sentences = make_stored_dataset(store, "datasets/s", n=9, modality="text")
    assert vision.stacks_samples and not text.stacks_samples

    data = images.torch_dataset("all", vision.transform)
    items, _ = _loader_inputs(vision, data)
    assert isinstance(items, _StoredPixels)
    out = embed_samples(vision, data, vision.layers()[-1:], options=EmbedOptions(batch_size=4, device="cpu"))
    old = torch.stack([_old_transform(vision.transform, images.image(i)) for i in range(9)])
    np.testing.assert_allclose(out[vision.layers()[-1]], vision.embed(old, vision.layers()[-1:])[vision.layers()[-1]],
                               atol=1e-5, rtol=0)

    texts = sentences.torch_dataset("all", text.transform)
    items, collate = _loader_inputs(text, texts)
    assert items is texts and isinstance(collate, _Collate)
    layer = text.layers()[-1]
    out = embed_samples(text, texts, [layer], options=EmbedOptions(batch_size=4, device="cpu"))
    direct = text.embed(text.collate([sentences.text(i) for i in range(9)]), [layer])[layer]
    np.testing.assert_allclose(out[layer], direct.numpy(), atol=1e-5, rtol=0)


def test_other_datasets_and_adapters_keep_the_per_item_path(tmp_path, zoo):
    spec, ctx = zoo
    adapter = create_adapter(spec, ctx)
    stored = make_stored_dataset(ArtifactStore(str(tmp_path / "artifacts")), "datasets/o", n=6)
    wrapped = stored.torch_dataset("all", lambda image: adapter.transform(image))  # not an ImageTransform
    assert _loader_inputs(adapter, wrapped)[0] is wrapped

    class Plain:  # an adapter that does not say its collate stacks
        def __init__(self, inner):
            self.inner = inner

        def __getattr__(self, name):
            if name == "stacks_samples":
                raise AttributeError(name)
            return getattr(self.inner, name)

    data = stored.torch_dataset("all", adapter.transform)
    assert _loader_inputs(Plain(adapter), data)[0] is data
    assert isinstance(_loader_inputs(adapter, data)[0], _StoredPixels)
