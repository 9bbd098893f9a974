"""Probe cost on one zoo-sized model (a ~100k-parameter CNN on 32×32×3), measured side by side.

Prints (1) optimisation steps per second of each arm on 1,000 target samples (median over repeats), the
cost of a 5-seed, 3-arm probe at the default budget relative to one full fine-tune of the same model, and
(2) an example verdict table on a synthetic target with sources built to have known answers.

    python bench/probes.py [--samples 1000] [--repeats 3] [--threads 1] [--skip-rates] [--skip-verdicts]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.backbones.base import BackboneSpec, LayerSpec, Preprocessing  # noqa: E402
from app.probes import ProbeBudget, ProbeData, RunCache, judge, run_arm, run_probe  # noqa: E402
from app.probes.runner import frozen_features  # noqa: E402


def conv_bn_act(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


class CnnTrunk(nn.Module):
    """The zoo's ``cnn_small`` layout: three stages of two 3×3 convs + 2× max-pool, then global pooling."""

    def __init__(self, width: int, depth: int = 3) -> None:
        super().__init__()
        widths, stages, cin = (width, 2 * width, 4 * width), [], 3
        for w in widths[:depth]:
            stages.append(nn.Sequential(conv_bn_act(cin, w), conv_bn_act(w, w), nn.MaxPool2d(2)))
            cin = w
        self.stages = nn.Sequential(*stages)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stages(x).mean(dim=(2, 3))


class CnnAdapter:
    """A ``BackboneAdapter`` over :class:`CnnTrunk`; "pretrained" weights are the given state dict."""

    def __init__(self, tag: str, state: dict[str, torch.Tensor] | None, width: int, *,
                 like_scratch: bool = False) -> None:
        self.width, self.state, self.like_scratch = width, state, like_scratch
        self.spec = BackboneSpec(
            id=f"zoo:cnn_small.{tag}", family="zoo", modality="image",
            preprocessing=Preprocessing(input_size=(3, 32, 32)), extra={"arch": "cnn_small"},
            layers=tuple(LayerSpec(f"stage{i + 1}", width * 2**i, "conv", (i + 1) / 3) for i in range(3)),
            num_params=sum(p.numel() for p in CnnTrunk(width).parameters()))

    def layers(self) -> list[str]:
        return [ly.name for ly in self.spec.layers]

    @property
    def transform(self):
        return lambda x: x

    def collate(self, samples: Sequence[Any]) -> torch.Tensor:
        return torch.stack(list(samples))

    def to(self, device):
        return self

    def embed(self, batch, layers):
        return {ly: self.trunk(ly).eval()(batch).detach() for ly in layers}

    @property
    def has_source_head(self) -> bool:
        return False

    def source_logits(self, batch):
        raise ValueError(f"{self.spec.id} keeps no source head in this benchmark")

    def trunk(self, layer: str, *, pretrained: bool = True, seed: int = 0) -> nn.Module:
        depth = self.layers().index(layer) + 1
        scratch = not pretrained or self.state is None or self.like_scratch
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed if scratch else 0)
            net = CnnTrunk(self.width, depth)
        if not scratch:
            net.load_state_dict({k: v for k, v in self.state.items() if k in net.state_dict()})
        return net


def pattern_images(n: int, seed: int, classes: int = 4) -> tuple[torch.Tensor, np.ndarray]:
    """Noise images carrying one of ``classes`` fixed 3×6×6 patterns at a random place."""
    patterns = np.random.default_rng(12345).normal(size=(classes, 3, 6, 6)).astype(np.float32)
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    x = rng.normal(size=(n, 3, 32, 32)).astype(np.float32)
    for i in range(n):
        r, c = rng.integers(0, 26, 2)
        x[i, :, r:r + 6, c:c + 6] += 1.2 * patterns[y[i]]
    return torch.from_numpy(x), y


def pretrain(width: int, x: torch.Tensor, y: np.ndarray, steps: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    trunk = CnnTrunk(width)
    net = nn.Sequential(trunk, nn.Linear(4 * width, int(y.max()) + 1))
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3)
    yt, gen = torch.from_numpy(y), torch.Generator().manual_seed(0)
    for _ in range(steps):
        idx = torch.randint(0, len(x), (64,), generator=gen)
        loss = nn.functional.cross_entropy(net(x[idx]), yt[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return {k: v.detach().clone() for k, v in trunk.state_dict().items()}


def switched_off(width: int) -> dict[str, torch.Tensor]:
    """Adversarial weights: the first stage's BatchNorm shift kills every ReLU, so nothing gets through."""
    state = CnnTrunk(width).state_dict()
    state["stages.0.0.1.bias"] = torch.full_like(state["stages.0.0.1.bias"], -50.0)
    return state


def measure_rates(args: argparse.Namespace) -> None:
    x, y = pattern_images(args.samples, 1)
    adapter = CnnAdapter("bench", None, args.width)
    data = ProbeData(x, y, task_type="classification")
    layer = "stage3"
    t0 = time.perf_counter()
    feats = frozen_features(adapter, layer, data, device="cpu")
    embed_s = time.perf_counter() - t0
    probe_budget = ProbeBudget()  # the default recipe a job uses
    timing = ProbeBudget(steps=args.measure_steps, eval_every=probe_budget.eval_every, patience=10_000,
                         lr_grid=(1e-3,), linear_lr_grid=(1e-2,))
    rates: dict[str, list[float]] = {"finetune": [], "linear": [], "scratch": []}
    for arm in rates:  # warm-up: first-call allocations and kernel selection are not the steady state
        run_arm(adapter, layer, data, arm, 99, budget=timing.with_steps(2), device="cpu",
                cached_embeddings=feats if arm == "linear" else None)
    for rep in range(args.repeats):
        for arm in rates:  # interleaved, so load changes on the shared machine hit every arm alike
            run = run_arm(adapter, layer, data, arm, rep, budget=timing, device="cpu",
                          cached_embeddings=feats if arm == "linear" else None)
            rates[arm].append(run.steps / run.seconds)
    med = {arm: statistics.median(v) for arm, v in rates.items()}
    n_train = round(args.samples * (1 - probe_budget.val_fraction))
    full_steps = args.full_epochs * -(-n_train // probe_budget.batch_size)
    full_s = full_steps / med["finetune"]
    per_arm = {arm: len(probe_budget.grid(arm)) * probe_budget.steps / med[arm] for arm in med}
    probe_s = args.seeds * sum(per_arm.values()) + embed_s
    print(f"# model: cnn_small width {args.width}, {adapter.spec.num_params:,} trunk parameters, "
          f"{args.samples} target samples (32×32×3), batch {probe_budget.batch_size}, "
          f"{torch.get_num_threads()} CPU thread(s), {args.repeats} repeats × {args.measure_steps} steps")
    print(f"{'arm':10} {'steps/s (median)':>17} {'min':>8} {'max':>8} {'vs finetune':>12}")
    for arm, v in rates.items():
        print(f"{arm:10} {med[arm]:17.1f} {min(v):8.1f} {max(v):8.1f} {med[arm] / med['finetune']:11.2f}×")
    print(f"linear fast path: one pass of frozen features over {args.samples} samples = {embed_s:.2f} s")
    print()
    print(f"# one full fine-tune: {args.full_epochs} epochs over {n_train} rows = {full_steps} steps "
          f"≈ {full_s:.0f} s")
    print(f"# probe: {args.seeds} seeds × 3 arms × LR grid {len(probe_budget.lr_grid)} × {probe_budget.steps} "
          f"steps (default ProbeBudget, no early stop = upper bound)")
    for arm, s in per_arm.items():
        print(f"  {arm:10} {args.seeds} × {s:7.1f} s = {args.seeds * s:8.0f} s  "
              f"({args.seeds * s / full_s:5.2f}× full fine-tune)")
    print(f"  total      {probe_s:8.0f} s = {probe_s / full_s:.2f}× one full fine-tune "
          f"(scratch shared across same-architecture candidates: each further candidate adds "
          f"{args.seeds * (per_arm['finetune'] + per_arm['linear']) / full_s:.2f}×)")


def verdict_example(args: argparse.Namespace) -> None:
    width = args.verdict_width
    xs, ys = pattern_images(3000, 99)
    t0 = time.perf_counter()
    sources = [
        CnnAdapter("same_distribution", pretrain(width, xs, ys, args.pretrain_steps), width),
        CnnAdapter("shuffled_labels", pretrain(width, xs, np.random.default_rng(0).permutation(ys),
                                               args.pretrain_steps), width),
        CnnAdapter("scratch_twin", None, width, like_scratch=True),
        CnnAdapter("switched_off", switched_off(width), width),
    ]
    pre_s = time.perf_counter() - t0
    x, y = pattern_images(args.samples, 1)
    budget = ProbeBudget(steps=args.verdict_steps, eval_every=20, lr_grid=(3e-3,), linear_lr_grid=(1e-2,),
                         max_samples=args.verdict_samples)
    cache, results = RunCache(), {}
    t0 = time.perf_counter()
    for src in sources:
        results[src.spec.id] = run_probe(src, "stage3", x, y, seeds=5, budget=budget, device="cpu", shared=cache)
    probe_s = time.perf_counter() - t0
    print()
    print(f"# example verdicts: cnn_small width {width} ({sources[0].spec.num_params:,} parameters), 5 seeds, {args.verdict_steps} steps, {args.verdict_samples} target rows per seed, "
          f"δ = 0.01 accuracy (sources pretrained {args.pretrain_steps} steps in {pre_s:.0f} s; "
          f"probes {probe_s:.0f} s, {cache.hits} scratch runs shared)")
    print(f"{'candidate':30} {'finetune':>9} {'linear':>7} {'scratch':>8} {'mean Δ':>8} {'95% CI':>18} "
          f"{'p (Holm)':>9}  verdict")
    for v in judge(results, margin=0.01):
        m = {arm: np.mean(list(s.values())) for arm, s in results[v.backbone_id].by_arm().items()}
        ci = f"[{v.ci_low:+.3f}, {v.ci_high:+.3f}]"
        print(f"{v.backbone_id:30} {m['finetune']:9.3f} {m['linear']:7.3f} {m['scratch']:8.3f} "
              f"{v.delta_mean:+8.3f} {ci:>18} {v.p_value:9.3f}  {v.verdict}")
    print()
    for v in judge(results, margin=0.01):
        print(f"- {v.text}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--width", type=int, default=19, help="19 gives ~100k trunk parameters")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--measure-steps", type=int, default=50)
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--full-epochs", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--skip-verdicts", action="store_true")
    parser.add_argument("--skip-rates", action="store_true")
    parser.add_argument("--verdict-width", type=int, default=8, help="a narrower cnn_small keeps the example quick")
    parser.add_argument("--pretrain-steps", type=int, default=300)
    parser.add_argument("--verdict-steps", type=int, default=60)
    parser.add_argument("--verdict-samples", type=int, default=400)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if not args.skip_rates:
        measure_rates(args)
    if not args.skip_verdicts:
        verdict_example(args)


if __name__ == "__main__":
    main()
