"""Probe cost on one zoo model (the shipped ``cnn_small`` through ``ZooAdapter``, ~100k parameters at width 19,
on 32×32×3), measured side by side.

Prints (1) optimisation steps per second of each arm on 1,000 target samples (median over repeats), the
cost of a 5-seed, 3-arm probe at the default budget relative to one full fine-tune of the same model, and
(2) an example verdict table on a synthetic target with sources built to have known answers.

    python bench/probes.py [--samples 1000] [--repeats 3] [--threads 1] [--skip-rates] [--skip-verdicts]
    python bench/probes.py --replication [--truth …/ground_truth_v2.csv] [--gt-runs …/runs_v2.csv]

``--replication`` prints instead the side-by-side table of the independent replication of ground truth v2
(``bench/probe_replication.py``, from the rows it has written): today's fixed-5-seeds probe stage, the
sequential default and the sequential design with linear evidence on the same jobs — time, verdicts,
inconclusive share, precision/recall of negative transfer — and the probe stage's cost as a fraction of
measuring the same pairs, and every candidate of a target, with the ground-truth protocol.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

DEVICE = "cpu"  # --device: where the arms train (bench/gpu_check.sh runs this on "cuda" beside "cpu")

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.backbones.base import BackboneAdapter, Preprocessing  # noqa: E402
from app.backbones.card_writer import save_zoo_backbone  # noqa: E402
from app.backbones.cards import load_card  # noqa: E402
from app.backbones.catalogue import create_adapter  # noqa: E402
from app.backbones.context import LoadContext  # noqa: E402
from app.backbones.zoo import ZooModel, build_zoo_model  # noqa: E402
from app.probes import ProbeBudget, ProbeData, RunCache, judge, run_arm, run_probe  # noqa: E402
from app.probes.runner import frozen_features  # noqa: E402

PRE32 = Preprocessing(input_size=(3, 32, 32), mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
ARCH = "cnn_small"


def zoo_adapter(folder: Path, tag: str, width: int, model: ZooModel | None = None) -> BackboneAdapter:
    """The shipped zoo adapter (``ZooAdapter`` via the catalogue's factory) over ``cnn_small`` of ``width``,
    with ``model``'s weights written as a real card + safetensors (seed-0 initial weights when omitted)."""
    kwargs = {"num_classes": 4, "width": width}
    if model is None:
        torch.manual_seed(0)
        model = build_zoo_model(ARCH, **kwargs)
    card = save_zoo_backbone(model, folder, f"zoo:{ARCH}.{tag}", arch_kwargs=kwargs, preprocessing=PRE32,
                             description=f"bench/probes.py {tag}")
    return create_adapter(load_card(card), LoadContext(models_dir=folder), device=DEVICE)


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


def pretrain(width: int, x: torch.Tensor, y: np.ndarray, steps: int) -> ZooModel:
    torch.manual_seed(0)
    net = build_zoo_model(ARCH, num_classes=int(y.max()) + 1, width=width)
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3)
    yt, gen = torch.from_numpy(y), torch.Generator().manual_seed(0)
    for _ in range(steps):
        idx = torch.randint(0, len(x), (64,), generator=gen)
        loss = nn.functional.cross_entropy(net(x[idx]), yt[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return net.eval()


def switched_off(width: int) -> ZooModel:
    """Adversarial weights: the first BatchNorm's shift kills every ReLU after it, so nothing gets through."""
    torch.manual_seed(0)
    net = build_zoo_model(ARCH, num_classes=4, width=width)
    first_bn = next(m for m in net.modules() if isinstance(m, nn.BatchNorm2d))
    with torch.no_grad():
        first_bn.bias.fill_(-50.0)
    return net


def measure_rates(args: argparse.Namespace, folder: Path) -> None:
    x, y = pattern_images(args.samples, 1)
    adapter = zoo_adapter(folder, "bench", args.width)
    data = ProbeData(x, y, task_type="classification")
    layer = "stage3"
    t0 = time.perf_counter()
    feats = frozen_features(adapter, layer, data, device=DEVICE)
    embed_s = time.perf_counter() - t0
    probe_budget = ProbeBudget()  # the default recipe a job uses
    timing = ProbeBudget(steps=args.measure_steps, eval_every=probe_budget.eval_every, patience=10_000,
                         lr_grid=(1e-3,), linear_lr_grid=(1e-2,))
    rates: dict[str, list[float]] = {"finetune": [], "linear": [], "scratch": []}
    for arm in rates:  # warm-up: first-call allocations and kernel selection are not the steady state
        run_arm(adapter, layer, data, arm, 99, budget=timing.with_steps(2), device=DEVICE,
                cached_embeddings=feats if arm == "linear" else None)
    for rep in range(args.repeats):
        for arm in rates:  # interleaved, so load changes on the shared machine hit every arm alike
            run = run_arm(adapter, layer, data, arm, rep, budget=timing, device=DEVICE,
                          cached_embeddings=feats if arm == "linear" else None)
            rates[arm].append(run.steps / run.seconds)
    med = {arm: statistics.median(v) for arm, v in rates.items()}
    n_train = round(args.samples * (1 - probe_budget.val_fraction))
    full_steps = args.full_epochs * -(-n_train // probe_budget.batch_size)
    full_s = full_steps / med["finetune"]
    per_arm = {arm: len(probe_budget.grid(arm)) * probe_budget.steps / med[arm] for arm in med}
    probe_s = args.seeds * sum(per_arm.values()) + embed_s
    print(f"# model: the shipped zoo cnn_small (ZooAdapter), width {args.width}, {adapter.spec.num_params:,} parameters, "
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


def verdict_example(args: argparse.Namespace, folder: Path) -> None:
    width = args.verdict_width
    xs, ys = pattern_images(3000, 99)
    t0 = time.perf_counter()
    sources = [
        zoo_adapter(folder, "same_distribution", width, pretrain(width, xs, ys, args.pretrain_steps)),
        zoo_adapter(folder, "shuffled_labels", width,
                    pretrain(width, xs, np.random.default_rng(0).permutation(ys), args.pretrain_steps)),
        zoo_adapter(folder, "random_init", width),
        zoo_adapter(folder, "switched_off", width, switched_off(width)),
    ]
    pre_s = time.perf_counter() - t0
    x, y = pattern_images(args.samples, 1)
    budget = ProbeBudget(steps=args.verdict_steps, eval_every=20, lr_grid=(3e-3,), linear_lr_grid=(1e-2,),
                         max_samples=args.verdict_samples)
    cache, results = RunCache(), {}
    t0 = time.perf_counter()
    for src in sources:
        results[src.spec.id] = run_probe(src, "stage3", x, y, seeds=5, budget=budget, device=DEVICE, shared=cache)
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
    parser.add_argument("--device", default="cpu", help="cpu or cuda: where the probe arms train")
    parser.add_argument("--replication", action="store_true",
                        help="print the ground-truth replication table (bench/probe_replication.py) instead")
    parser.add_argument("--truth", default=None, help="ground_truth_v2.csv (with --replication)")
    parser.add_argument("--gt-runs", default=None, help="runs_v2.csv (with --replication)")
    args = parser.parse_args()
    if args.replication:
        from bench import probe_replication

        argv = ["--report"] + (["--truth", args.truth] if args.truth else []) + \
            (["--gt-runs", args.gt_runs] if args.gt_runs else [])
        probe_replication.main(argv)
        return
    global DEVICE
    DEVICE = args.device
    print(f"device: {DEVICE}")
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="bench-probes-") as tmp:
        if not args.skip_rates:
            measure_rates(args, Path(tmp))
        if not args.skip_verdicts:
            verdict_example(args, Path(tmp))


if __name__ == "__main__":
    main()
