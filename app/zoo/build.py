"""Train zoo sources and publish them: ``<name>.safetensors`` + ``<name>.toml`` + ``<name>.stats.npz``.

A card records the source dataset, classes, samples, held-out accuracy, ``task_difficulty`` at the last
layer, the recipe and seed, the weights' sha256, the licence, and where the source statistics live: a
stratified sample of 256 source training images embedded at every layer (``"<layer>/features"``,
``"<layer>/labels"``), which is what ``otdd``, ``frechet_distance`` and ``mmd`` compare a target against.
"""

from __future__ import annotations

import io
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from app.backbones.base import Preprocessing
from app.backbones.card_writer import save_zoo_backbone
from app.backbones.weights import sha256_file
from app.backbones.zoo import build_zoo_model
from app.transferability import task_difficulty
from app.zoo import images as im
from app.zoo.domains import generate
from app.zoo.recipe import deterministic, pooled_features, predict, train
from app.zoo.sources import ZooSource

PREPROCESSING = Preprocessing(input_size=(3, im.SIZE, im.SIZE), mean=im.MEAN, std=im.STD,
                              interpolation="bilinear", crop_pct=1.0)
STATS_SAMPLES = 256
LICENCE = "Apache-2.0 (own)"
# the npz members get a fixed timestamp so that the same arrays give the same bytes
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class BuiltSource:
    id: str
    card: Path
    weights_sha256: str
    accuracy: float
    seconds: float


def source_data(source: ZooSource) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """``(train images, labels), (test images, labels)`` of a source task (labels shuffled if asked)."""
    if source.domain == "digits":
        x, y = generate("digits", None, source.seed, pool="source", **source.params)
        n_train = len(x) - source.n_test if source.n_train is None else source.n_train
        if n_train + source.n_test > len(x):
            raise ValueError(f"{source.name}: the digits source pool holds {len(x)} images, "
                             f"asked {n_train} + {source.n_test}")
        train_xy = (x[:n_train], y[:n_train])
        test_xy = (x[len(x) - source.n_test:], y[len(x) - source.n_test:])
    else:
        n_train = source.n_train or 0
        x, y = generate(source.domain, n_train + source.n_test, source.seed, **source.params)
        train_xy, test_xy = (x[:n_train], y[:n_train]), (x[n_train:], y[n_train:])
    if source.labels == "shuffled":
        rng = np.random.default_rng(source.seed + 1_000_003)
        train_xy = (train_xy[0], rng.permutation(train_xy[1]))
        test_xy = (test_xy[0], rng.permutation(test_xy[1]))
    elif source.labels != "true":
        raise ValueError(f"{source.name}: labels must be 'true' or 'shuffled', got {source.labels!r}")
    return train_xy, test_xy


def stratified_sample(labels: np.ndarray, n: int, seed: int) -> np.ndarray:
    """Up to ``n`` row indices, as even across classes as the counts allow, in a seeded order."""
    rng = np.random.default_rng(seed)
    by_class = [rng.permutation(np.flatnonzero(labels == c)) for c in np.unique(labels)]
    picked: list[int] = []
    depth = 0
    while len(picked) < min(n, len(labels)):
        for rows in by_class:
            if depth < len(rows) and len(picked) < n:
                picked.append(int(rows[depth]))
        depth += 1
    return np.array(sorted(picked), dtype=np.int64)


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """An ``.npz`` (``np.load(allow_pickle=False)`` reads it) whose bytes depend on the arrays only."""
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for key in sorted(arrays):
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.ascontiguousarray(arrays[key]), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=_ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, buf.getvalue())


def train_source(source: ZooSource) -> tuple[torch.nn.Module, dict]:
    """The trained model and what the card says about its task (deterministic for a given source)."""
    (xtr, ytr), (xte, yte) = source_data(source)
    with deterministic(source.recipe.threads):
        torch.manual_seed(source.seed)
        model = build_zoo_model(source.arch, **source.arch_kwargs)
        losses = train(model, im.to_model_input(xtr), torch.from_numpy(ytr), source.recipe, source.seed)
        test_x = im.to_model_input(xte)
        accuracy = float((predict(model, test_x).argmax(1).numpy() == yte).mean())
        last = model.layer_specs()[-1].name
        held_out = pooled_features(model, test_x, [last])[last]
        # the random-init control trains on nothing, but its statistics still describe its source domain
        stats_rows = stratified_sample(ytr, STATS_SAMPLES, source.seed)
        stats = pooled_features(model, im.to_model_input(xtr[stats_rows]))
    facts = {
        "accuracy": round(accuracy, 4),
        "difficulty": task_difficulty(held_out, yte).to_dict(),
        "final_loss": round(losses[-1], 4) if losses else None,
        "n_train": int(len(xtr)) if source.recipe.epochs else 0,
        "n_test": int(len(xte)),
        "stats": {**{f"{k}/features": v.astype(np.float32) for k, v in stats.items()},
                  **{f"{k}/labels": ytr[stats_rows].astype(np.int64) for k in stats}},
    }
    return model, facts


def build_source(source: ZooSource, models_dir: Path) -> BuiltSource:
    started = time.perf_counter()
    model, facts = train_source(source)
    models_dir = Path(models_dir)
    models_dir.mkdir(parents=True, exist_ok=True)
    stats_file = f"{source.name}.stats.npz"
    write_npz(models_dir / stats_file, facts["stats"])
    dataset = {"digits": "sklearn-digits (source pool)"}.get(source.domain, f"procedural-{source.domain}")
    if source.labels == "shuffled":
        dataset += " with shuffled labels"
    recipe = {
        **source.recipe.to_dict(), "seed": source.seed, "labels": source.labels, "domain": source.domain,
        "domain_params": source.params or None, "n_train": facts["n_train"], "n_test": facts["n_test"],
        "final_train_loss": facts["final_loss"], "role": source.role,
        "built_with": f"tscout zoo build (torch {torch.__version__.split('+')[0]}, {source.recipe.threads} thread, "
                      "deterministic algorithms)",
        "determinism": "bitwise: rebuilding on the same CPU kind with the same torch version reproduces "
                       "weights_sha256",
        "stats_sha256": sha256_file(models_dir / stats_file),
    }
    card = save_zoo_backbone(
        model, models_dir, source.id, arch_kwargs=source.arch_kwargs, preprocessing=PREPROCESSING,
        description=source.description, licence=LICENCE,
        source={"dataset": dataset, "classes": source.classes, "samples": facts["n_train"],
                "accuracy": facts["accuracy"], "difficulty": facts["difficulty"],
                "description": f"{source.description}; accuracy on {facts['n_test']} held-out images"},
        recipe=recipe, source_stats=stats_file)
    return BuiltSource(source.id, card, sha256_file(models_dir / f"{source.name}.safetensors"), facts["accuracy"],
                       round(time.perf_counter() - started, 2))
