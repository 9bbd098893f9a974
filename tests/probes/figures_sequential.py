"""Operating characteristics of the default sequential design, for the report (not a test).

    PYTHONPATH=. python -m tests.probes.figures_sequential [--jobs 8000]

(1) one candidate per job at Δ ∈ {0, ±δ, −3δ, +0.245} with SD 0.03 (0.06 for +0.245), normal and t3 seed
noise: verdict shares, false negative-transfer rate, coverage, mean seeds, share stopped at max_seeds /
futile; (2) four candidates calibrated on the ground truth's hardest pairs (mean Δ and SD over its 5
seeds): the three labelled ``negative`` and a strong positive, with and without the final t-test.
"""

from __future__ import annotations

import argparse

from app.probes.sequential import SequentialDesign
from app.probes.simulation import operating_characteristics


def _row(label: str, oc: dict, i: int) -> str:
    s = oc["verdict_share"]
    return (f"  {label:28s} NT {s['negative_transfer'][i]:.3f}  pos {s['positive'][i]:.3f}  "
            f"nb {s['no_benefit'][i]:.3f}  inc {s['inconclusive'][i]:.3f}  cover {oc['coverage'][i]:.4f}  "
            f"seeds {oc['mean_seeds'][i]:5.2f}  @max {oc['share_max_seeds'][i]:.3f}  futile {oc['share_futile'][i]:.3f}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=8000)
    args = ap.parse_args()
    design = SequentialDesign()
    print(f"design: {design.to_dict()}")
    delta = design.margin
    for noise in ("normal", "t3"):
        print(f"one candidate per job, {noise} seed noise, {args.jobs} jobs")
        for mu, sd in ((0.0, 0.03), (delta, 0.03), (-delta, 0.03), (-3 * delta, 0.03), (0.245, 0.06)):
            oc = operating_characteristics([mu], [sd], design, noise=noise, jobs=args.jobs, seed=1)
            print(_row(f"Δ {mu:+.3f} SD {sd:.2f}", oc, 0) + f"  false-NT {oc['fwer_false_negative_transfer']:.4f}")
    names = ["gratings_4<-cnn_small.digits", "gratings_4<-resnet_small.noise", "shapes_small<-vit_tiny.digits",
             "strong positive"]
    mus, sds = [-0.087, -0.309, -0.01067, 0.245], [0.0849, 0.2205, 0.00494, 0.06]
    for label, d in (("default (final t-test, w = 0.5)", design),
                     ("confidence sequence alone (w = 0)", SequentialDesign(final_test_share=0.0))):
        oc = operating_characteristics(mus, sds, d, jobs=args.jobs, seed=2)
        print(f"four candidates calibrated on the ground truth, {label}")
        for i, n in enumerate(names):
            print(_row(n, oc, i))
    oc = operating_characteristics([0.0, 0.0, delta, 0.0], [0.02, 0.05, 0.03, 0.1], design, noise="t3",
                                   jobs=args.jobs, seed=3)
    print(f"four null candidates (t3): FWER false NT {oc['fwer_false_negative_transfer']:.4f}, false positive "
          f"{oc['fwer_false_positive']:.4f}, false no-benefit {oc['fwer_false_no_benefit']:.4f}, "
          f"joint interval miss {oc['simultaneous_miss']:.4f}")


if __name__ == "__main__":
    main()
