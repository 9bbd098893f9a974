"""What the stages of a ranking job read, loaded once per unit of work: :class:`RankingInputs` binds one job's
plan to the domain packages — the stored target dataset, backbone specs, adapters (through the runtime's
cache), cached embeddings and source-head probabilities, and the source statistics the zoo cards ship.

A unit builds one ``RankingInputs`` from its job id (the plan is read from the database once); the
orchestrating thread builds one for the rank, subset and verdict stages, so embeddings are loaded once
there too. Nothing here writes results: stages do.
"""

from __future__ import annotations

import uuid
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from app.backbones.base import BackboneAdapter, BackboneSpec
from app.datasets.stored import StoredDataset
from app.db.embedding_index import SqlEmbeddingIndex
from app.db.session import unit_of_work
from app.devices import resolve_device
from app.runtime import Runtime
from app.services.rankings.plan import FEATURES_PREFIX, Plan, load_plan, pick_layers, scoring_rows

FEATURES_LAYER = "features"


class _NoSourceHead(Exception):
    pass


class RankingInputs:
    """One job's plan and everything its stages read, each loaded at most once."""

    def __init__(self, runtime: Runtime, plan: Plan) -> None:
        self.runtime = runtime
        self.plan = plan
        self._specs: dict[str, BackboneSpec] = {}
        self._embeddings: dict[tuple[str, str], np.ndarray] = {}
        self._scored: dict[tuple[str, str], np.ndarray] = {}
        self._head: dict[str, dict[str, np.ndarray] | None] = {}

    @classmethod
    def load(cls, runtime: Runtime, job_id: uuid.UUID) -> RankingInputs:
        with runtime.sessions() as session:
            return cls(runtime, load_plan(session, job_id))

    def close(self) -> None:
        """Release the target's open samples file, if reading images opened it."""
        if "stored" in self.__dict__:
            self.stored.close()

    # -- the target --------------------------------------------------------------------------------------
    @cached_property
    def stored(self) -> StoredDataset:
        return StoredDataset(self.runtime.store, self.plan.dataset_prefix)

    @cached_property
    def train_labels(self) -> np.ndarray:
        return self.stored.labels[self.stored.split("train")]

    @cached_property
    def rows(self) -> np.ndarray:
        """Positions within the train split that the metrics score (all, or the plan's stratified subsample)."""
        return scoring_rows(self.train_labels, self.plan.max_samples, self.plan.seed)

    @cached_property
    def labels(self) -> np.ndarray:
        return self.train_labels[self.rows]

    def target(self, idx: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """The metric's target keyword for the scored rows (or a subset ``idx`` of them)."""
        labels = self.labels if idx is None else self.labels[idx]
        return {"labels": labels} if self.plan.classification else {"targets": labels.astype(np.float64)}

    @cached_property
    def num_classes(self) -> int | None:
        classes = self.stored.manifest.classes
        return len(classes) if self.plan.classification and classes else None

    # -- backbones ---------------------------------------------------------------------------------------
    def spec(self, backbone_id: str) -> BackboneSpec:
        if backbone_id not in self._specs:
            from app.services.backbones import get_spec

            with self.runtime.sessions() as session:
                self._specs[backbone_id] = get_spec(session, self.plan.project_id, self.runtime.catalogue,
                                                    backbone_id)[0]
        return self._specs[backbone_id]

    def adapter(self, backbone_id: str) -> BackboneAdapter:
        """The loaded adapter, from the runtime's cache (keyed by id and weights digest)."""
        from app.services.backbones import load_adapter

        spec = self.spec(backbone_id)

        def build() -> BackboneAdapter:
            with self.runtime.sessions() as session:
                return load_adapter(session, self.plan.project_id, self.runtime, backbone_id,
                                    device=str(self.device))

        return self.runtime.adapters.get((backbone_id, spec.weights_digest, str(self.device)), build)

    @cached_property
    def device(self):
        return resolve_device(self.runtime.settings.device)

    def layers(self, backbone_id: str) -> list[str]:
        """The cut points this job scores for ``backbone_id``."""
        if backbone_id.startswith(FEATURES_PREFIX):
            return [FEATURES_LAYER]
        spec = self.spec(backbone_id)
        return pick_layers([ly.name for ly in spec.layers], [ly.depth for ly in spec.layers], self.plan.layers)

    def depths(self, backbone_id: str) -> dict[str, float]:
        if backbone_id.startswith(FEATURES_PREFIX):
            return {FEATURES_LAYER: 1.0}
        return {ly.name: ly.depth for ly in self.spec(backbone_id).layers}

    def resolve_layer(self, backbone_id: str, best_layer: str) -> str:
        """A concrete layer for a table row's ``best_layer`` ("mean" of the layers → the last one)."""
        return self.layers(backbone_id)[-1] if best_layer == "mean" else best_layer

    # -- embeddings --------------------------------------------------------------------------------------
    def _embed_options(self):
        from app.embeddings.pipeline import EmbedOptions

        return EmbedOptions.from_settings(self.runtime.settings)

    def embeddings(self, backbone_id: str, layers: list[str]) -> dict[str, np.ndarray]:
        """``{layer: (n_train, d)}`` over the whole train split, from the content-addressed cache (computed on
        a miss), each layer loaded once per ``RankingInputs``."""
        self.embed(backbone_id, layers, head=False)
        return {ly: self._embeddings[(backbone_id, ly)] for ly in layers}

    def _feature_set(self, backbone_id: str) -> np.ndarray:
        """A feature-set candidate's rows of the train split, aligned to the target's stored order."""
        from app.datasets.feature_sets import align

        train = self.stored.split("train")
        entry = self.plan.feature_sets.get(backbone_id)
        if entry is None or entry["prefix"] == self.plan.dataset_prefix:
            return np.asarray(self.stored.features()[train], dtype=np.float32)
        candidate = StoredDataset(self.runtime.store, entry["prefix"])
        idx = align(self.stored, candidate, name=f"{backbone_id} ({entry['name']})")
        return np.asarray(candidate.features()[idx[train]], dtype=np.float32)

    def scored(self, backbone_id: str, layer: str) -> np.ndarray:
        """The features of the scored rows at ``layer``, gathered once per ``RankingInputs`` (read-only: every
        metric of the unit reads the same array, and validating it as float64 copies it)."""
        key = (backbone_id, layer)
        if key not in self._scored:
            array = np.asarray(self.embeddings(backbone_id, [layer])[layer])[self.rows]
            array.flags.writeable = False
            self._scored[key] = array
        return self._scored[key]

    def head_outputs(self) -> list[str]:
        """The source-head outputs the plan's metrics read (:data:`~app.embeddings.HEAD_OUTPUTS`): the
        softmax for ``source_probs`` metrics, the logits for ``source_logits`` ones."""
        from app.embeddings.pipeline import HEAD_INPUTS
        from app.transferability import METRICS

        wanted = {name for m in self.plan.metrics for name in METRICS[m].inputs}
        return [out for inp, out in HEAD_INPUTS.items() if inp in wanted]

    def source_head(self, backbone_id: str) -> dict[str, np.ndarray] | None:
        """The source head's outputs the plan reads, ``{output: (n_train, source_classes)}``, fetched (or
        computed, in one head pass) together; ``None`` when the backbone has no head."""
        if backbone_id in self._head or not self.head_outputs():
            return self._head.get(backbone_id)
        self.embed(backbone_id, [])
        return self._head.get(backbone_id)

    def embed(self, backbone_id: str, layers: list[str], *, head: bool = True) -> None:
        """The features at ``layers`` and (with ``head``) the source head's outputs the plan reads, from the
        cache, with what is missing of both computed in **one** forward pass (the embed stage's unit of
        work); a backbone without a head gets its layers alone and no head outputs."""
        missing = [ly for ly in layers if (backbone_id, ly) not in self._embeddings]
        if backbone_id.startswith(FEATURES_PREFIX):
            if missing:
                self._embeddings[(backbone_id, FEATURES_LAYER)] = self._feature_set(backbone_id)
            if head:
                self._head[backbone_id] = None
            return
        outputs = self.head_outputs() if head and backbone_id not in self._head else []
        key = (self.plan.dataset_digest, backbone_id)
        if outputs and key in self.runtime.no_source_head:
            self._head[backbone_id] = None
            outputs = []
        if not missing and not outputs:
            return
        from app.embeddings.cache import embed_dataset

        def build(_spec: BackboneSpec) -> BackboneAdapter:  # called only on a cache miss
            built = self.adapter(backbone_id)
            if outputs and not built.has_source_head:
                raise _NoSourceHead(backbone_id)
            return built

        try:
            with unit_of_work(self.runtime.sessions) as session:
                got = embed_dataset(SqlEmbeddingIndex(session), self.runtime.store, self.stored,
                                    self.plan.dataset_digest, self.spec(backbone_id), missing + outputs, "train",
                                    adapter_factory=build, options=self._embed_options(),
                                    locks=self.runtime.embedding_locks)
        except _NoSourceHead:
            self.runtime.no_source_head.add(key)
            self._head[backbone_id] = None
            self.embed(backbone_id, missing, head=False)
            return
        for ly in missing:
            self._embeddings[(backbone_id, ly)] = got[ly]
        if outputs:
            self._head[backbone_id] = {name: got[name] for name in outputs}

    def source_probs(self, backbone_id: str) -> np.ndarray | None:
        """Source-head probabilities on the train split (LEEP/NCE/PACTran), or ``None`` when the backbone has
        no head or the plan reads none."""
        from app.embeddings.pipeline import SOURCE_PROBS

        return (self.source_head(backbone_id) or {}).get(SOURCE_PROBS)

    def source_logits(self, backbone_id: str) -> np.ndarray | None:
        """Source-head logits on the train split (RSA/DDS), or ``None`` when the backbone has no head or the
        plan reads none."""
        from app.embeddings.pipeline import SOURCE_LOGITS

        return (self.source_head(backbone_id) or {}).get(SOURCE_LOGITS)

    def source_statistics(self, backbone_id: str, layer: str) -> tuple[np.ndarray, np.ndarray] | None:
        """A stored sample of the source's own embeddings at ``layer`` (from its card), for domain similarity."""
        if backbone_id.startswith(FEATURES_PREFIX):
            return None
        spec = self.spec(backbone_id)
        stats = spec.extra.get("source_stats") or {}
        name = stats.get("file") if isinstance(stats, dict) else None
        if not name:
            return None
        base = Path(spec.extra.get("card_dir") or self.runtime.settings.models_dir)
        path = (base / name).resolve()
        if not path.is_file() or base.resolve() not in path.parents:
            return None
        with np.load(path, allow_pickle=False) as z:
            if f"{layer}/features" not in z:
                return None
            return np.asarray(z[f"{layer}/features"], dtype=np.float64), np.asarray(z[f"{layer}/labels"])

    def describe(self, backbone_id: str) -> dict[str, Any]:
        """Data-independent facts of a backbone (source accuracy, parameter count) for the trivial baselines."""
        if backbone_id.startswith(FEATURES_PREFIX):
            return {"source_accuracy": None, "num_params": None}
        spec = self.spec(backbone_id)
        return {"source_accuracy": spec.source.accuracy if spec.source else None,
                "num_params": float(spec.num_params) if spec.num_params else None}
