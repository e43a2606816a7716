"""No host sync inside the training step: at most one synchronising read per log interval.

The counter (benchmarks/host_syncs.SyncCounter) sees `aten._local_scalar_dense` (.item(), float(t),
bool(t)), data-dependent shapes (nonzero, boolean indexing, masked_select, unique), device-to-host
copies (visible on an accelerator only: on this CPU machine the copies are host work) and
`Tensor.tolist()`. It runs over `Trainer.fit` (optimizer, scheduler, gradient clipping, logging and
the final checkpoint included; the data loader's host work is collated beforehand) of a fine-tuning
task with the task's own loss (VQA, F30K retrieval) and of image pre-training (MLM, ITM, ITC, MGSC, MLTC).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # `benchmarks` is a top-level folder, not part of the installed package
    sys.path.insert(0, str(ROOT))

from benchmarks.host_syncs import SyncCounter, count_syncs  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("task", ["vqa", "f30k", "pretrain"])
@pytest.mark.parametrize("log_every", [1, 3])
def test_one_host_read_per_log_interval(task, log_every, monkeypatch):
    monkeypatch.setenv("SCLBENCH_NO_PROGRESS", "1")
    steps = 3
    result = count_syncs(task, steps=steps, log_every=log_every)
    assert result["syncs"] == steps // log_every, result  # the log record's one read, nothing per step
    assert result["kinds"] == ["tolist"]


def test_the_counter_sees_every_kind_of_host_read():
    """Each way the step used to read the device is counted, so a zero above means something."""
    x = torch.tensor([1.0, float("nan"), 3.0])
    reads = [
        lambda: x.sum().item(),
        lambda: float(x[0]),
        lambda: bool(x.isnan().any()),
        lambda: x.tolist(),
        lambda: x.nonzero(),
        lambda: x[x > 1],
        lambda: x.masked_select(x > 1),
        lambda: torch.unique(x),
    ]
    for read in reads:
        with SyncCounter() as counter:
            read()
        assert len(counter.events) >= 1
    with SyncCounter() as counter:  # device-side work reads nothing
        y = torch.where(torch.isfinite(x), x, torch.zeros_like(x)).cumsum(0)
        y.argsort().gather(0, torch.arange(2))
    assert counter.events == []


def test_host_tensors_by_design_are_not_counted():
    step = torch.tensor(3.0)
    with SyncCounter(lambda: [step]) as counter:
        step.item()
    assert counter.events == []


def test_mlm_random_replacements_equal_the_host_pool_they_replace():
    """mlm_mask draws the k-th non-special id on the device (no host pool copied each step): the
    same ids as indexing the sorted pool of non-special ids with the same draws."""
    from sclbench.data.masking import MaskSpec, mlm_mask

    for specials in [(0, 1, 2, 3, 49), (5,), (0, 1, 2, 48, 49), ()]:
        spec = MaskSpec(mask_id=3, vocab_size=50, special_ids=specials)
        ids = torch.randint(4, 48, (64, 16), generator=torch.Generator().manual_seed(0))
        masks = torch.ones_like(ids)
        new, _ = mlm_mask(ids, masks, spec, prob=0.9, generator=torch.Generator().manual_seed(1))
        # The former computation, from the same generator state.
        g = torch.Generator().manual_seed(1)
        real = masks.bool() & ~torch.isin(ids, torch.tensor(specials, dtype=torch.long))
        chosen = real & (torch.rand(ids.shape, generator=g) < 0.9)
        roll = torch.rand(ids.shape, generator=g)
        pool = torch.tensor([i for i in range(50) if i not in specials])
        pick = torch.randint(len(pool), ids.shape, generator=g)
        old = torch.where(chosen & (roll < 0.8), torch.full_like(ids, spec.mask_id), ids)
        old = torch.where(chosen & (roll >= 0.8) & (roll < 0.9), pool[pick], old)
        assert torch.equal(new, old)


def test_token_losses_in_static_shapes_equal_the_boolean_indexed_ones():
    """MLTC's token NSL without boolean indexing equals `norm_softmax_loss(p[sel] @ t[sel].T)`: random
    selections (empty rows, a full row, nothing selected at all), values and gradients."""
    from sclbench.objectives.completion import _token_nce
    from sclbench.objectives.losses import norm_softmax_loss, normalize

    g = torch.Generator().manual_seed(0)
    for trial in range(12):
        b, length, d = 3, 7, 5
        selected = torch.rand(b, length, generator=g) < [0.0, 0.3, 0.8, 1.0][trial % 4]
        if trial % 4 == 1:
            selected[0] = True  # a full row next to sparse ones
        pred = torch.randn(b, length, d, generator=g, requires_grad=True)
        target = torch.randn(b, length, d, generator=g)
        ours = _token_nce(pred, target, selected, 0.03, gathered=False, mode="official", per_row=length)
        (g_ours,) = torch.autograd.grad(ours, pred)
        if selected.any():
            ref = norm_softmax_loss(normalize(pred[selected]) @ normalize(target[selected]).t(), 0.03)
            (g_ref,) = torch.autograd.grad(ref, pred)
        else:  # the former code's "no masked token": zero, graph kept
            ref, g_ref = torch.zeros(()), torch.zeros_like(pred)
        torch.testing.assert_close(ours, ref, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(g_ours, g_ref, atol=1e-6, rtol=1e-5)


def test_the_static_bound_on_masked_text_tokens_holds_for_every_length():
    from sclbench.data.masking import scl_text_mask
    from sclbench.objectives.completion import text_mask_limit

    g = torch.Generator().manual_seed(0)
    for length in (2, 3, 5, 12, 40):
        for ratio in (0.15, 0.4, 0.99):
            masks = (torch.arange(length) < torch.randint(0, length + 1, (64, 1), generator=g)).long()
            masks[0] = 1  # the longest row reaches the bound
            _, masked = scl_text_mask(torch.full((64, length), 7), masks, 3, ratio, generator=g)
            assert masked.sum(1).max() <= text_mask_limit(length, ratio)
            assert masked[0].sum() == text_mask_limit(length, ratio)
