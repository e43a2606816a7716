"""gather_grad modes on torchrun x2 (gloo): each mode's gradients equal a direct reference of that mode.

local_slice: the official AllGather_multi: rank r differentiates ITS loss w.r.t. its own rows only (the
other ranks' rows are constants), DDP averages; for image batches the MGSC text CLS and MLTC image
tokens use local negatives only (the official HEAD compute_scl), for clips the text CLS is gathered
(the v1 compute_scl). official: the same with every gathered term scaled by world / 8 (the official
8-process weight). exact: the gradient of the loss on the whole batch, every term gathered. The
references below use no process group and no sclbench loss code.
"""

import importlib.util
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

HERE = Path(__file__).parent
SCRIPT = HERE / "gather_modes_script.py"
ROOT = HERE.parents[1]
WORLD = 2
pytestmark = pytest.mark.slow

spec = importlib.util.spec_from_file_location("gather_modes_script", SCRIPT)
script = importlib.util.module_from_spec(spec)
spec.loader.exec_module(script)


def nsl(sim: torch.Tensor, tau) -> torch.Tensor:
    """Reference NormSoftmax: minus the mean log-probability of the diagonal, both directions."""
    rows = torch.log_softmax(sim / tau, dim=1).diagonal().mean()
    cols = torch.log_softmax(sim.t() / tau, dim=1).diagonal().mean()
    return -rows - cols


def unit(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True).clamp(min=1e-8)


def batch(name: str, fn, owner: int | None) -> torch.Tensor:
    """All ranks' rows of fn(input), concatenated in rank order; rows of ranks other than `owner`
    detached (owner None: nothing detached)."""
    parts = []
    for r in range(WORLD):
        out = fn(script.rank_inputs(r)[name])
        parts.append(out if owner is None or r == owner else out.detach())
    return torch.cat(parts)


def itc_reference(owner: int | None, scale: float = 1.0) -> dict[str, torch.Tensor]:
    tiny, _ = script.make_params()
    text = unit(batch("itc_text", tiny.text_proj, owner))
    image = unit(batch("itc_image", tiny.image_proj, owner))
    loss = scale * 0.5 * nsl(text @ image.t(), tiny.cl_temp)
    return dict(zip(dict(tiny.named_parameters()), torch.autograd.grad(loss, list(tiny.parameters()))))


def token_loss(pred, target, sel, tau):
    p, t = unit(pred[sel]), unit(target[sel].detach())
    return nsl(p @ t.t(), tau)


def completion_reference(
    owner: int | None, local_text_cls: bool, local_image_tokens: bool, frames: int = script.F, scale: float = 1.0
) -> dict:
    """owner None: the whole batch (exact). Else rank `owner`'s official loss, its gathered terms x scale.
    frames: the first `frames` frames of the inputs (1 = an image batch)."""
    _, proj = script.make_params()
    tau, weight = 0.03, 0.2
    cut = {"v_hat", "v", "it_pred", "it_target", "image_sel"}  # inputs with a frame axis
    take = lambda name, r: script.rank_inputs(r)[name][:, :frames] if name in cut else script.rank_inputs(r)[name]  # noqa: E731
    rows = lambda name: torch.cat(
        [
            proj(take(name, r))
            if owner is None or r == owner  # noqa: E731
            else proj(take(name, r)).detach()
            for r in range(WORLD)
        ]
    )
    own = lambda name: proj(take(name, owner))  # noqa: E731
    sel = lambda name, local: (
        take(name, owner)
        if local  # noqa: E731
        else torch.cat([take(name, r) for r in range(WORLD)])
    )
    v_hat, v = unit(rows("v_hat")), unit(rows("v").detach())
    loss = scale * sum(nsl(v_hat[:, f] @ v[:, f].t(), tau) for f in range(frames)) / frames
    t_hat, t = (own("t_hat"), own("t")) if local_text_cls else (rows("t_hat"), rows("t"))
    loss = loss + (1.0 if local_text_cls else scale) * nsl(unit(t_hat) @ unit(t.detach()).t(), tau)
    tt = scale * token_loss(rows("tt_pred"), rows("tt_target"), sel("text_sel", False), tau)
    if local_image_tokens:
        it = token_loss(own("it_pred"), own("it_target"), sel("image_sel", True), tau)
    else:
        it = scale * token_loss(rows("it_pred"), rows("it_target"), sel("image_sel", False), tau)
    loss = loss + weight * (tt + it)
    return dict(zip(dict(proj.named_parameters()), torch.autograd.grad(loss, list(proj.parameters()))))


def mean(grads: list[dict]) -> dict:
    return {k: sum(g[k] for g in grads) / len(grads) for k in grads[0]}


OFFICIAL_SCALE = WORLD / 8  # "official": gathered terms at their 8-process weight


def expected(mode: str, term: str) -> dict:
    scale = OFFICIAL_SCALE if mode == "official" else 1.0
    if term == "itc":
        return itc_reference(None) if mode == "exact" else mean([itc_reference(r, scale) for r in range(WORLD)])
    frames = script.F if term == "completion" else 1
    if mode == "exact":
        return completion_reference(None, local_text_cls=False, local_image_tokens=False, frames=frames)
    clip = frames > 1  # clips: the v1 code gathers the text CLS pair; images: HEAD keeps it local
    return mean(
        [
            completion_reference(r, local_text_cls=not clip, local_image_tokens=True, frames=frames, scale=scale)
            for r in range(WORLD)
        ]
    )


@pytest.fixture(scope="module")
def torchrun_grads(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("gather") / "grads.pt"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
    }
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        f"--nproc_per_node={WORLD}",
        f"--master_port={port}",
        str(SCRIPT),
        "--out",
        str(out),
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    saved = torch.load(out)
    assert saved["world"] == WORLD
    return saved["grads"]


@pytest.mark.parametrize("term", ["itc", "completion", "completion_image"])
@pytest.mark.parametrize("mode", ["official", "local_slice", "exact"])
def test_gradients_equal_reference(torchrun_grads, mode, term):
    got, want = torchrun_grads[mode][term], expected(mode, term)
    assert got.keys() == want.keys()
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=1e-5, atol=1e-6, msg=f"{mode} {term} {name}")


@pytest.mark.parametrize("term", ["itc", "completion", "completion_image"])
@pytest.mark.parametrize("a, b", [("official", "exact"), ("official", "local_slice"), ("local_slice", "exact")])
def test_modes_differ(torchrun_grads, term, a, b):
    """The modes are not the same computation (else the test above could not tell them apart)."""
    one, other = torchrun_grads[a][term], torchrun_grads[b][term]
    assert any(not torch.allclose(one[k], other[k], rtol=1e-3) for k in one)


def test_official_per_term_scope_is_not_all_gathered():
    """The official completion reference differs from official gradients with every term gathered:
    the local text CLS / image-token scope matters for these inputs."""
    official = mean([completion_reference(r, True, True, frames=1) for r in range(WORLD)])
    all_gathered = mean([completion_reference(r, False, False, frames=1) for r in range(WORLD)])
    assert any(not torch.allclose(official[k], all_gathered[k], rtol=1e-3) for k in official)


def test_unknown_mode_is_a_config_error():
    from sclbench.errors import ConfigError
    from sclbench.objectives.completion import CompletionConfig
    from sclbench.objectives.pretrain import PretrainConfig

    with pytest.raises(ConfigError, match="train.gather_grad"):
        CompletionConfig(gather_grad="sum")
    with pytest.raises(ConfigError, match="train.gather_grad"):
        PretrainConfig(gather_grad="local")
    assert PretrainConfig(gather_grad="exact").completion.gather_grad == "exact"
    assert PretrainConfig(gather_grad="local_slice").completion.gather_grad == "local_slice"
