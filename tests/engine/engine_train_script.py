"""Toy training run for the subprocess tests (SIGKILL resume, torchrun equivalence).

    python engine_train_script.py --out DIR [--steps 12 --save-every 3 --workers 0 ...]
    python -m torch.distributed.run --nproc_per_node=2 engine_train_script.py --out DIR ...

Rank 0 writes DIR/final_weights.pt and DIR/summary.json; with --checks also DIR/checks.json
(eval-sampler coverage and all_gather_with_grad gradients, computed on every rank).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from engine_toy import ToyDataset, collate, make_evaluate_fn, make_loss_fn, tiny_model  # noqa: E402

from sclbench.engine import distributed as D  # noqa: E402
from sclbench.engine.sampler import ShardedEvalSampler, gather_in_order  # noqa: E402
from sclbench.engine.trainer import TrainConfig, Trainer  # noqa: E402


def checks() -> dict:
    """Run on every rank: eval coverage of an odd split, and the gradient of all_gather_with_grad."""
    seen = gather_in_order(list(ShardedEvalSampler(11)))
    per_rank = D.gather_objects(len(ShardedEvalSampler(11)))
    x = torch.full((2, 3), float(D.rank() + 1), requires_grad=True)
    weights = torch.arange(2 * 3 * D.world_size(), dtype=torch.float32).view(-1, 3)
    (D.all_gather_with_grad(x) * weights).sum().backward()
    grads = D.gather_objects(x.grad.tolist())
    return {"seen": seen, "per_rank": per_rank, "grads": grads, "world": D.world_size()}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--out", required=True)
    p.add_argument("--steps", type=int, default=12)
    p.add_argument("--save-every", type=int, default=3)
    p.add_argument("--eval-every", type=int, default=4)
    p.add_argument("--workers", type=int, default=0)
    p.add_argument("--global-batch", type=int, default=8)
    p.add_argument("--per-device", type=int, default=4)
    p.add_argument("--samples", type=int, default=40)  # 5 steps per epoch: runs cross epochs
    p.add_argument("--step-delay", type=float, default=0.0)
    p.add_argument("--checks", action="store_true")
    p.add_argument("--device", default="cpu")  # tests compare CPU runs, even on a GPU machine
    p.add_argument("--precision", default="fp32")
    args = p.parse_args()
    torch.set_num_threads(1)
    os.environ.setdefault("SCLBENCH_NO_PROGRESS", "1")

    cfg = TrainConfig(
        lr=1e-3,
        lr_mult_head=10,
        lr_mult_cross_modal=5,
        warmup=0.25,
        max_steps=args.steps,
        global_batch_size=args.global_batch,
        per_device_batch_size=args.per_device,
        save_every_steps=args.save_every,
        eval_every_steps=args.eval_every,
        keep_last=2,
        out_dir=args.out,
        seed=7,
        num_workers=args.workers,
        log_every=2,
        select_metric="score",
        max_grad_norm=1.0,
        device=args.device,
        precision=args.precision,
    )
    trainer = Trainer(
        tiny_model(),
        make_loss_fn(args.step_delay),
        ToyDataset(args.samples),
        collate,
        cfg,
        evaluate_fn=make_evaluate_fn(ToyDataset(9, seed=5)),
    )
    summary = trainer.fit(resume=True)
    result = checks() if args.checks else None
    if D.is_main():
        out = Path(args.out)
        torch.save(trainer.model.state_dict(), out / "final_weights.pt")
        (out / "summary.json").write_text(json.dumps(summary))
        if result is not None:
            (out / "checks.json").write_text(json.dumps(result))
    D.cleanup()


if __name__ == "__main__":
    main()
