"""Fixtures of the task-layer tests."""

import pytest


@pytest.fixture(scope="session")
def synth_full(tmp_path_factory):
    """The synthetic benchmark at scale 1 (~7 s to write).

    The shared scale-0.25 set has 8 VQA val images and 8 NLVR2 dev examples: too few to tell a model
    that learned from one that guessed. Scale 1 gives 30 VQA minival questions and 40 NLVR2 dev examples.
    """
    from sclbench.data.synthetic import generate

    return generate(tmp_path_factory.mktemp("synth_full"), seed=0, scale=1.0)
