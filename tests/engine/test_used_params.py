"""The parameter-use probe (engine/used_params.py): by rule, per job, what the loss reaches trains."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from sclbench.app import jobs
from sclbench.engine.trainer import Trainer
from sclbench.engine.used_params import reached_parameters

MASK_TOKEN = "vision_transformer.visual.visual_mask_token"
MIXED = "data.corpora=[{name: sbu, root: sbu}, {name: webvid, root: webvid}]"


def trainer_for(card: str, synth_root, tmp_path, overrides=(), seed_before_trainer=None, **train) -> Trainer:
    root = synth_root / card
    task, loaded = jobs.prepare(
        card, None, str(root), list(overrides), preset="tiny", tokenizer=str(synth_root / "tokenizer"), roles=["train"]
    )
    cfg = jobs.train_config(
        task, tmp_path / "run", global_batch_size=4, per_device_batch_size=train.pop("pdb", 4), max_steps=2, **train
    )
    dataset = task.build_dataset("train") if task.card.family == "pretrain" else task.build_dataset("train", train=True)
    if seed_before_trainer is not None:  # prepare() seeds the generators itself (model initialisation)
        random.seed(seed_before_trainer)
        np.random.seed(seed_before_trainer)
        torch.manual_seed(seed_before_trainer)
    return Trainer(loaded.model, task.loss, dataset, task.collate, cfg)


@pytest.mark.parametrize(
    "card,overrides,frozen",
    [
        ("vqa", ["data.minival_images=4"], [MASK_TOKEN]),  # no fine-tuning loss masks image tokens
        ("nlvr2", [], [MASK_TOKEN]),
        ("msrvtt", [], []),  # the video model has no mask token; rank, ITM-frozen and contrastive heads train
        # con_weight 0: the contrastive projections and temperature are unreached as well
        ("f30k", ["train.con_weight=0"], [MASK_TOKEN, "cl_temp", "vision_proj", "language_proj"]),
        ("pretrain", ["train.chunk_size=4"], []),  # MLM, ITM, ITC, MGSC, MLTC: everything is reached
        ("pretrain", ["train.chunk_size=4", "objectives=[mlm,itm,itc,mgsc]"], [MASK_TOKEN]),  # CVPR SCL: no MLTC
    ],
)
def test_frozen_parameters_are_what_the_loss_never_reaches(card, overrides, frozen, synth_root, tmp_path):
    trainer = trainer_for(card, synth_root, tmp_path, overrides)
    use = trainer.parameter_use
    assert use.varying == [] and use.probes == 1
    # Heads and projections are frozen whole: compare by module prefix.
    got = sorted({n if n in (MASK_TOKEN, "cl_temp") else n.split(".")[0] for n in use.frozen})
    assert got == sorted(frozen)
    trained = {n for g in trainer.optimizer.param_groups for n in g["param_names"]}
    assert not trained & set(use.frozen)
    assert all(not p.requires_grad for n, p in trainer.model.named_parameters() if n in use.frozen)
    assert trainer.runtime["parameters"]["frozen"] == use.frozen


def test_mixed_image_and_video_batches_vary_and_need_the_unused_search(synth_root, tmp_path):
    """Images use MLTC's mask token, clips (CVPR video objectives) do not: the probe looks at one batch
    of each kind and, the token being reached by some only, DDP gets find_unused_parameters."""
    trainer = trainer_for(
        "pretrain", synth_root, tmp_path, [MIXED, "train.chunk_size=2", "train.video_chunk_size=2"], pdb=1
    )
    use = trainer.parameter_use
    assert use.probes == 3 and use.frozen == [] and use.varying == [MASK_TOKEN]
    assert trainer.ddp["find_unused_parameters"] and not trainer.ddp["static_graph"]


def test_probe_leaves_the_random_streams_alone(synth_root, tmp_path):
    trainer_for("nlvr2", synth_root, tmp_path, seed_before_trainer=5)  # the probe runs with dropout on
    assert random.random() == random.Random(5).random()
    assert np.random.rand() == np.random.RandomState(5).rand()
    assert torch.equal(torch.rand(3), torch.rand(3, generator=torch.Generator().manual_seed(5)))


def test_reached_parameters_walks_the_graph():
    a, b, c = (torch.nn.Parameter(torch.ones(2)) for _ in range(3))
    loss = (a * 2).sum() + (b.detach() * 3).sum() + torch.cat([c, c]).mean()
    assert reached_parameters(loss, [a, b, c]) == {id(a), id(c)}
    assert reached_parameters(torch.zeros(()), [a]) == set()


def test_ddp_settings_and_runtime_record(synth_root, tmp_path):
    trainer = trainer_for("nlvr2", synth_root, tmp_path, pdb=2)  # 1 process, accumulation 2
    assert trainer.ddp == {"find_unused_parameters": False, "gradient_as_bucket_view": True, "static_graph": False}
    one_step = trainer_for("nlvr2", synth_root, tmp_path / "b", pdb=4)
    assert one_step.ddp["static_graph"]  # no accumulation: safe (torch's static_graph + no_sync is not)
    rt = trainer.runtime
    assert rt["precision"] == "fp32" and rt["tf32"] is False  # CPU: unchanged defaults
    assert rt["loader"] == {"num_workers": 0, "pin_memory": False, "persistent_workers": False, "prefetch_factor": None}
    assert rt["optimizer"] == "AdamW (foreach)" and rt["accumulation"] == 2


def test_a_leftover_ddp_reduction_error_is_one_clear_message(synth_root, tmp_path):
    from sclbench.engine.trainer import StepContext
    from sclbench.errors import SCLBenchError

    trainer = trainer_for("nlvr2", synth_root, tmp_path)

    def ddp_like(batch, ctx):
        raise RuntimeError("Expected to have finished reduction in the prior iteration before starting a new one.")

    trainer.module = ddp_like
    ctx = StepContext(4, 0, 0, 0, 2, torch.device("cpu"))
    with pytest.raises(
        SCLBenchError,
        match=r"step 4: .* different parameters on different batches\. Set "
        r"train\.find_unused_parameters=true",
    ):
        trainer._forward({}, ctx)
    trainer.module = lambda batch, ctx: (_ for _ in ()).throw(RuntimeError("another failure"))
    with pytest.raises(RuntimeError, match="another failure"):  # anything else passes through unchanged
        trainer._forward({}, ctx)


@pytest.mark.parametrize("world,micro,accumulation", [(2, 1, 1), (2, 1, 2), (4, 2, 3)])
def test_kind_aligned_sampler_gives_every_rank_one_kind_per_micro_step(world, micro, accumulation):
    """Mixed image / clip batches on several processes: in each micro-step all ranks hold one kind."""
    from sclbench.engine.sampler import TrainSampler

    kinds = [0] * 23 + [1] * 11  # chunk kinds as ChunkedDataset.item_kinds gives them (all images first)
    global_batch = micro * world * accumulation
    samplers = [
        TrainSampler(len(kinds), global_batch, micro, seed=7, rank=r, world=world, kinds=kinds) for r in range(world)
    ]
    for epoch in (0, 1):
        for s in samplers:
            s.set_epoch(epoch)
        per_rank = [list(s) for s in samplers]
        assert len({len(p) for p in per_rank}) == 1
        seen = []
        for step in zip(*per_rank):  # one micro-step, every rank
            assert len({kinds[i] for batch in step for i in batch}) == 1
            seen += [i for batch in step for i in batch]
        assert len(seen) == len(set(seen))  # nothing twice
        group = micro * world
        assert samplers[0].steps_per_epoch == (23 // group + 11 // group) // accumulation
        assert len(per_rank[0]) == samplers[0].steps_per_epoch * accumulation
    # Both kinds occur, and one process keeps the plain permutation (no agreement needed).
    assert {kinds[i] for i in seen} == {0, 1}
    one = TrainSampler(len(kinds), 4, 1, seed=7, rank=0, world=1, kinds=kinds)
    plain = TrainSampler(len(kinds), 4, 1, seed=7, rank=0, world=1)
    assert list(one) == list(plain) and one.steps_per_epoch == plain.steps_per_epoch
