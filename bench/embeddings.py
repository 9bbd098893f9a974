"""Embedding pipeline throughput and cache speed-up, side by side in one run.

For a zoo-style CNN (``cnn_small``) and a timm ``resnet18`` (random weights) on N stored PNG images:

- pipeline images/s: ``embed_samples`` over the stored dataset (decode + transform + DataLoader + forward),
  through its pixel batch path (uint8 pixels per image, float normalisation once per batch),
- raw forward images/s: ``adapter.embed`` on pre-decoded, pre-stacked tensors (same batch, same threads),
- their ratio (target ≥ 0.9),
- per-item images/s and its ratio to raw: the same ``embed_samples`` with the transform hidden behind a wrapper,
  so each item is transformed to a float tensor on its own and ``adapter.collate`` stacks them (the path
  every image dataset took before the batch path; what other datasets and adapters still take),
- data µs/img: CPU time per image of the batch path's decode, transform and collate alone (this thread's
  CPU time, so it hardly depends on the machine's load),
- cold vs cached time of the same ``embed_dataset`` request (target ≥ 50×),
- peak RSS of the process.

Medians over ``--repeats``; raw, pipeline and per-item runs are interleaved. The load average is printed
before and after. Run: ``python -m bench.embeddings [--images 2000] [--device auto]``.
"""

from __future__ import annotations

import argparse
import io
import os
import resource
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def _dataset(store, prefix: str, n: int, size: int):
    from PIL import Image

    from app.datasets.stored import Manifest, StoredDataset, write_dataset, write_samples

    rng = np.random.default_rng(0)
    with write_samples(store, prefix) as writer:
        for _ in range(n):
            buf = io.BytesIO()
            Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(buf, format="PNG")
            writer.add(buf.getvalue())
    labels = (np.arange(n) % 10).astype(np.int64)
    manifest = Manifest(modality="image", task_type="classification", num_samples=n,
                        classes=[str(k) for k in range(10)])
    write_dataset(store, prefix, manifest, labels, {"train": np.arange(n), "val": np.arange(0)})
    return StoredDataset(store, prefix)


def _spec(name: str, size: int, folder: Path):
    from app.backbones.adapters import timm_adapter
    from app.backbones.base import BackboneId, Preprocessing
    from app.backbones.cards import replace_spec, spec_from_card
    from app.backbones.catalogue import LoadContext, complete_spec

    pre = Preprocessing(input_size=(3, size, size), mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    if name == "zoo:cnn_small":
        return complete_spec(spec_from_card({
            "id": "zoo:cnn_small.bench", "modality": "image", "weights": "random",
            "arch": {"name": "cnn_small", "kwargs": {"num_classes": 10, "width": 32}},
            "preprocessing": {"input_size": [3, size, size], "mean": [0.5] * 3, "std": [0.5] * 3},
        }))
    spec = timm_adapter.describe(BackboneId.parse("timm:resnet18"), LoadContext(hub_cache_dir=folder),
                                 weights="random")
    return replace_spec(spec, preprocessing=pre)


class _PerImage:
    """The adapter's transform behind a wrapper: the pipeline then takes its per-item path."""

    def __init__(self, transform) -> None:
        self.transform = transform

    def __call__(self, image):
        return self.transform(image)


def _data_cpu_per_image(dataset, adapter, batch_size: int) -> float:
    """This thread's CPU seconds per image to decode, transform and collate ``dataset`` (the batch path)."""
    from app.embeddings.pipeline import _loader_inputs

    items, collate = _loader_inputs(adapter, dataset)
    loader = torch.utils.data.DataLoader(items, batch_size=batch_size, collate_fn=collate)
    start = time.thread_time()
    for _ in loader:
        pass
    return (time.thread_time() - start) / len(dataset)


def _median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _bench_one(name: str, size: int, args: argparse.Namespace, store, sessions, tmp: Path, device) -> dict:
    from app.backbones.catalogue import LoadContext, create_adapter
    from app.db.embedding_index import SqlEmbeddingIndex
    from app.devices import autocast, autocast_dtype
    from app.embeddings import EmbedOptions, embed_dataset, embed_samples

    stored = _dataset(store, f"datasets/{size}", args.images, size)
    spec = _spec(name, size, tmp / "hub")
    adapter = create_adapter(spec, LoadContext(models_dir=tmp)).to(device)
    layers = [spec.layers[len(spec.layers) // 2].name, spec.last_layer]
    options = EmbedOptions(batch_size=args.batch_size, num_workers=args.workers, device=str(device),
                           prefetch=args.prefetch)
    dataset = stored.torch_dataset("train", transform=adapter.transform)
    tensors = torch.stack([adapter.transform(stored.image(i)) for i in range(len(stored))])
    embed_samples(adapter, torch.utils.data.Subset(dataset, range(args.batch_size)), layers, options=options)

    def raw():
        for start in range(0, len(tensors), args.batch_size):
            with autocast(device, autocast_dtype(device))():
                out = adapter.embed(tensors[start:start + args.batch_size], layers)
            for v in out.values():
                v.float().cpu().numpy()  # the pipeline hands back host float32 too

    def pipeline():
        embed_samples(adapter, dataset, layers, options=options)

    per_item_dataset = stored.torch_dataset("train", transform=_PerImage(adapter.transform))

    def per_item():
        embed_samples(adapter, per_item_dataset, layers, options=options)

    # interleaved, so that drift in the machine's load hits all measurements alike
    raw_t, pipe_t, item_t = [], [], []
    for _ in range(args.repeats):
        raw_t.append(_median_time(raw, 1))
        pipe_t.append(_median_time(pipeline, 1))
        item_t.append(_median_time(per_item, 1))
    raw_s, pipe_s, item_s = statistics.median(raw_t), statistics.median(pipe_t), statistics.median(item_t)
    data_cpu = statistics.median(_data_cpu_per_image(dataset, adapter, args.batch_size) for _ in range(3))

    def request(digest: str) -> None:
        with sessions() as session:
            embed_dataset(SqlEmbeddingIndex(session), store, stored, digest, spec, layers, "train",
                          adapter_factory=lambda s: create_adapter(s, LoadContext(models_dir=tmp)), options=options)
            session.commit()

    cold_t, hot_t = [], []
    for r in range(args.cold_repeats):
        digest = f"{r + 1:064x}"  # a fresh dataset digest: nothing is cached for this request yet
        cold_t.append(_median_time(lambda d=digest: request(d), 1))
        hot_t.append(_median_time(lambda d=digest: request(d), args.repeats))
    cold, hot = statistics.median(cold_t), statistics.median(hot_t)
    return {
        "backbone": f"{name} @{size}px", "pipeline": len(stored) / pipe_s, "raw": len(stored) / raw_s,
        "ratio": raw_s / pipe_s, "per_item": len(stored) / item_s, "item_ratio": raw_s / item_s,
        "data_us": data_cpu * 1e6, "cold": cold, "cached": hot, "speedup": cold / hot,
        "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def run(args: argparse.Namespace) -> list[dict]:
    from app.db import migrate
    from app.db.session import make_engine, make_sessionmaker
    from app.devices import resolve_device
    from app.storage import ArtifactStore

    tmp = Path(tempfile.mkdtemp(prefix="tscout-bench-"))
    store = ArtifactStore(str(tmp / "artifacts"))
    url = f"sqlite:///{tmp / 'bench.db'}"
    migrate.upgrade(url)
    sessions = make_sessionmaker(make_engine(url))
    device = resolve_device(args.device)
    return [_bench_one(name, size, args, store, sessions, tmp, device)
            for name, size in (("zoo:cnn_small", 32), ("timm:resnet18", args.resnet_size))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--workers", type=int, default=0)
    parser.add_argument("--prefetch", type=int, default=2, help="batches the prefetching thread keeps ready (0 = off)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cold-repeats", type=int, default=2)
    parser.add_argument("--resnet-size", type=int, default=64, help="input side for resnet18 (224 is slow on CPU)")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    load_before = os.getloadavg()
    rows = run(args)
    load_after = os.getloadavg()
    print(f"images={args.images} batch={args.batch_size} workers={args.workers} prefetch={args.prefetch} "
          f"threads={torch.get_num_threads()} "
          f"device={args.device} repeats={args.repeats} (medians)")
    print("load average (1, 5, 15 min): before " + " ".join(f"{v:.2f}" for v in load_before)
          + ", after " + " ".join(f"{v:.2f}" for v in load_after))
    header = (f"{'backbone':<24} {'pipeline img/s':>14} {'raw img/s':>10} {'ratio':>6} "
              f"{'per-item img/s':>14} {'ratio':>6} {'data µs/img':>11} "
              f"{'cold s':>8} {'cached s':>9} {'speed-up':>9} {'peak RSS MB':>12}")
    print(header)
    print("-" * len(header))
    for r in rows:
        print(f"{r['backbone']:<24} {r['pipeline']:>14.0f} {r['raw']:>10.0f} {r['ratio']:>6.2f} "
              f"{r['per_item']:>14.0f} {r['item_ratio']:>6.2f} {r['data_us']:>11.0f} "
              f"{r['cold']:>8.2f} {r['cached']:>9.4f} {r['speedup']:>8.0f}× {r['rss']:>12.0f}")
    print("targets: ratio ≥ 0.9, speed-up ≥ 50×")


if __name__ == "__main__":
    main()
