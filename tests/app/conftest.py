"""Fixtures of the workflow tests: untrained tiny checkpoints on the shared synthetic benchmark."""

from pathlib import Path

import pytest
import torch

# The scale-0.25 synthetic VQA val split has 8 images: the card's 1000-image minival needs shrinking.
VQA_OVERRIDES = ["data.minival_images=4"]


def card_overrides(task: str) -> list[str]:
    return list(VQA_OVERRIDES) if task == "vqa" else []


@pytest.fixture(scope="session")
def tiny_checkpoint(synth_root, tmp_path_factory):
    """make(task) -> an sclbench checkpoint directory holding a freshly initialised tiny model.

    Built through `jobs.prepare`, so the heads, vocabulary size and tokenizer are the ones the
    task would use; cached per task for the session (initialisation is seeded, so it is stable).
    """
    from sclbench.app import jobs

    made: dict[str, Path] = {}
    root = tmp_path_factory.mktemp("tiny_ckpts")

    def make(task: str) -> Path:
        if task not in made:
            torch.manual_seed(0)
            data = synth_root / ("pretrain" if task == "pretrain" else task)
            _, loaded = jobs.prepare(
                task, None, str(data), card_overrides(task), preset="tiny", tokenizer=str(synth_root / "tokenizer")
            )
            made[task] = loaded.model.save_pretrained(root / task, tokenizer=loaded.tokenizer)
        return made[task]

    return make
