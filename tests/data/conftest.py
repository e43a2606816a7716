"""The synthetic mini-benchmark, generated once per test session at a small scale.

Other test folders can use it too: `from tests.data.conftest import synth_root` is not needed —
pytest fixtures in a conftest are visible below its folder, so move or re-export it to
`tests/conftest.py` if another folder wants it. Generation takes about a second at this scale.
"""

import pytest

SCALE = 0.25


@pytest.fixture(scope="session")
def synth_root(tmp_path_factory):
    from sclbench.data.synthetic import generate

    return generate(tmp_path_factory.mktemp("synth"), seed=0, scale=SCALE)


@pytest.fixture(scope="session")
def synth_tokenizer(synth_root):
    from sclbench.data.tokenizer import load_tokenizer

    return load_tokenizer(synth_root / "tokenizer")
