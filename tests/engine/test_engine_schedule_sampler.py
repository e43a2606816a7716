"""LR schedule shape, global-batch train sampler, seeded dataset, sharded eval sampler."""

import random

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from sclbench.engine.sampler import SeededDataset, ShardedEvalSampler, TrainSampler, reassemble
from sclbench.engine.schedule import build_scheduler, lr_multiplier, total_steps, warmup_steps
from sclbench.errors import ConfigError


def lrs_of(total, warmup, kind="linear", base=(1.0, 10.0)):
    params = [torch.nn.Parameter(torch.zeros(1)) for _ in base]
    opt = torch.optim.SGD([{"params": [p], "lr": lr} for p, lr in zip(params, base)])
    sched = build_scheduler(opt, total, warmup, kind)
    out = []
    for _ in range(total):
        out.append([g["lr"] for g in opt.param_groups])
        opt.step()
        sched.step()
    return np.array(out)


def test_linear_warmup_then_linear_decay_to_zero():
    lrs = lrs_of(total=100, warmup=0.1)
    assert warmup_steps(0.1, 100) == 10 and warmup_steps(0.05, 99) == 4 and warmup_steps(7, 100) == 7
    np.testing.assert_allclose(lrs[:11, 0], np.arange(11) / 10)  # 0 -> 1 over the 10 warm-up steps
    np.testing.assert_allclose(lrs[10:, 0], (100 - np.arange(10, 100)) / 90)  # 1 -> 0 at step 100
    np.testing.assert_allclose(lrs[:, 1], 10 * lrs[:, 0])  # every group scaled by the same factor
    assert lr_multiplier(100, 100, 10) == 0.0 and lr_multiplier(150, 100, 10) == 0.0


def test_cosine_schedule():
    lrs = lrs_of(total=50, warmup=10, kind="cosine")[:, 0]
    assert lrs[10] == pytest.approx(1.0) and lrs[30] == pytest.approx(0.5)
    assert np.all(np.diff(lrs[10:]) < 0) and lr_multiplier(50, 50, 10, "cosine") == pytest.approx(0.0)
    with pytest.raises(ConfigError):
        lr_multiplier(20, 50, 10, "step")


def test_total_steps_official_formula():
    assert total_steps(max_steps=15000, batches_per_epoch=10, epochs=3) == 15000
    assert total_steps(None, batches_per_epoch=4428, epochs=10, accumulation=4) == 11070  # COCO, §5.1
    with pytest.raises(ConfigError):
        total_steps(None, batches_per_epoch=0, epochs=10)


def test_train_sampler_global_batches_independent_of_world_size():
    one = list(TrainSampler(50, global_batch=8, micro_batch=4, seed=3, rank=0, world=1))
    two = [list(TrainSampler(50, 8, micro_batch=2, seed=3, rank=r, world=2)) for r in range(2)]
    assert len(one) == 6 * 2 and all(len(b) == 4 for b in one)  # 50 // 8 = 6 steps, accumulation 2
    for step in range(6):
        global_one = one[2 * step] + one[2 * step + 1]
        global_two = [i for m in range(2) for r in range(2) for i in two[r][2 * step + m]]
        assert global_one == global_two  # same samples in the same optimizer step
    flat = [i for b in one for i in b]
    assert len(set(flat)) == 48  # drop_last: the 2 left-over samples are not used this epoch


def test_train_sampler_epochs_and_resume():
    s = TrainSampler(40, 8, 4, seed=1, rank=0, world=1)
    e0, e0_again = list(s), list(s)
    s.set_epoch(1)
    e1 = list(s)
    assert e0 == e0_again and e0 != e1
    s.set_epoch(1, start_batch=3)  # resume after 3 optimizer steps of epoch 1
    assert list(s) == e1[3 * 2 :] and len(s) == len(e1) - 6
    with pytest.raises(ValueError):
        TrainSampler(40, global_batch=10, micro_batch=4, rank=0, world=1)


class Noisy:
    def __len__(self):
        return 12

    def __getitem__(self, i):
        return (i, random.random(), float(np.random.rand()), torch.rand(()).item())


def test_seeded_dataset_is_a_function_of_seed_epoch_index():
    ds = SeededDataset(Noisy(), seed=5)
    random.seed(99)
    before = random.getstate()
    a = [ds[i] for i in range(12)]
    assert random.getstate() == before  # the caller's RNG is untouched
    assert [ds[i] for i in reversed(range(12))] == a[::-1]  # order does not matter
    ds.set_epoch(1)
    assert [ds[i] for i in range(12)] != a
    ds.set_epoch(0)
    # Two workers, batches of 3: identical items.
    loader = DataLoader(ds, batch_size=3, num_workers=2, collate_fn=lambda b: b)
    assert [x for b in loader for x in b] == a


@pytest.mark.parametrize("n,world", [(11, 2), (7, 3), (2, 4), (12, 4)])
def test_sharded_eval_sampler_covers_each_example_once(n, world):
    shards = [list(ShardedEvalSampler(n, rank=r, world=world)) for r in range(world)]
    assert reassemble(shards) == list(range(n))
    assert max(map(len, shards)) - min(map(len, shards)) <= 1
