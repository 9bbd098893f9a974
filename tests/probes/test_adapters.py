"""The probe runner against the real adapters and the stored-dataset reader — the path the job takes."""

from __future__ import annotations

import pytest
import torch

from app.backbones.catalogue import create_adapter
from app.probes import ProbeBudget, ProbeData, run_arm
from app.storage import ArtifactStore
from tests.kits.backbones import build_specs, make_stored_dataset

BUDGET = ProbeBudget(steps=4, eval_every=2, batch_size=4, lr_grid=(1e-3,), linear_lr_grid=(1e-2,))


@pytest.fixture(scope="module")
def specs(tmp_path_factory):
    return build_specs(tmp_path_factory.mktemp("backbones"))


@pytest.mark.parametrize("name", ["zoo", "timm", "hf-text", "export"])
def test_arms_run_on_real_adapters_without_touching_their_weights(specs, tmp_path, name):
    torch.set_num_threads(1)
    spec, ctx = specs[name]
    adapter = create_adapter(spec, ctx)
    layer = adapter.layers()[-1]
    stored = make_stored_dataset(ArtifactStore(str(tmp_path / "a")), "d", n=24, modality=spec.modality)
    train = stored.split("train")
    data = ProbeData(stored.torch_dataset("train", adapter.transform), stored.labels[train],
                     task_type="classification", num_classes=3)
    held_out = ProbeData(stored.torch_dataset("val", adapter.transform), stored.labels[stored.split("val")],
                         task_type="classification", num_classes=3)
    samples = stored.torch_dataset("train", adapter.transform)
    probe_batch = adapter.collate([samples[i][0] for i in (0, 1, 2)])
    before = adapter.embed(probe_batch, [layer])[layer]
    runs = {arm: run_arm(adapter, layer, data, arm, 0, budget=BUDGET, device="cpu", eval_data=held_out)
            for arm in ("finetune", "linear", "scratch")}
    for arm, run in runs.items():
        assert run.metric is not None and 0.0 <= run.metric <= 1.0, arm
        assert run.details["metric_split"] == "eval" and run.steps >= 1
    assert len({r.details["data_digest"] for r in runs.values()}) == 1
    after = adapter.embed(probe_batch, [layer])[layer]
    torch.testing.assert_close(after, before)  # fine-tuning trained a copy, never the adapter's model
