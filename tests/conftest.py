"""Shared test set-up: offline hub, deterministic seeds, small shared fixtures."""

import os

# A hub lookup on a machine without internet waits ~50 s before failing: never try in tests.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import random  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402


@pytest.fixture(autouse=True)
def _seed_everything():
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    yield


# The synthetic mini-benchmark (generated once per session), shared by every test folder.
SYNTH_SCALE = 0.25


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory):
    from sclbench.data.synthetic import generate

    return generate(tmp_path_factory.mktemp("synth"), seed=0, scale=SYNTH_SCALE)


@pytest.fixture(scope="session")
def synth_tokenizer(synth_root):
    from sclbench.common.tokenizer import load_tokenizer

    return load_tokenizer(synth_root / "tokenizer")
