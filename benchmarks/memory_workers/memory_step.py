"""The measured step, shared verbatim by both sides of benchmarks/official_memory.py: resident memory
from /proc, the batch generator, and the step loop (forward + loss, backward, AdamW, zero_grad).

Only the standard library and torch: the official side imports this file in its own interpreter, beside
the official code, so nothing from sclbench may be imported here.
"""

from __future__ import annotations


def status_mb(field: str) -> float:
    """VmRSS / VmHWM of this process in MB (not getrusage: Linux carries ru_maxrss across exec)."""
    with open("/proc/self/status") as fh:
        line = next(ln for ln in fh if ln.startswith(field + ":"))
    return int(line.split()[1]) / 1024


def make_batch(batch: int, text_len: int, image_size: int, vocab: int = 50265, answers: int = 3129) -> dict:
    """Texts padded to `text_len` with random lengths, images, 3 scored answers per question (as
    lists, the official batch format, and as the dense target matrix our loss reads)."""
    import torch

    g = torch.Generator().manual_seed(0)
    lengths = torch.randint(text_len // 3, text_len, (batch,), generator=g)
    masks = (torch.arange(text_len)[None] < lengths[:, None]).long()
    ids = torch.randint(4, vocab, (batch, text_len), generator=g) * masks + (1 - masks)
    images = torch.randn(batch, 3, image_size, image_size, generator=g)
    labels = [torch.randperm(answers, generator=g)[:3].tolist() for _ in range(batch)]
    scores = [[1.0, 0.6, 0.3] for _ in range(batch)]
    targets = torch.zeros(batch, answers)
    for row, (lab, sc) in enumerate(zip(labels, scores)):
        targets[row, lab] = torch.tensor(sc)
    return {
        "text_ids": ids,
        "text_masks": masks,
        "images": images,
        "vqa_labels": labels,
        "vqa_scores": scores,
        "vqa_targets": targets,
    }


def run_steps(stages: dict, steps: int, loss_fn, optimizer, parameters) -> None:
    """Forward + loss, backward, optimizer step, zero_grad(set_to_none): RSS after each, peak after all."""
    import torch

    for step in range(1, steps + 1):
        stages[f"step{step}_before"] = status_mb("VmRSS")
        loss = loss_fn()
        stages[f"step{step}_forward"] = status_mb("VmRSS")
        loss.backward()
        stages[f"step{step}_backward"] = status_mb("VmRSS")
        stages[f"step{step}_backward_peak"] = status_mb("VmHWM")  # forward + backward, before AdamW
        if step == 1:
            stages["grads_mb"] = (
                sum(p.grad.numel() * p.grad.element_size() for p in parameters if p.grad is not None) / 2**20
            )
        optimizer.step()
        stages[f"step{step}_optimizer"] = status_mb("VmRSS")
        optimizer.zero_grad(set_to_none=True)
        del loss
        stages[f"step{step}_peak"] = status_mb("VmHWM")
    stages["optimizer_state_mb"] = (
        sum(t.numel() * t.element_size() for s in optimizer.state.values() for t in s.values() if torch.is_tensor(t))
        / 2**20
    )
    stages["params_mb"] = sum(p.numel() * p.element_size() for p in parameters) / 2**20
    stages["trainable_params_m"] = sum(p.numel() for p in parameters if p.requires_grad) / 1e6
    stages["peak"] = status_mb("VmHWM")
