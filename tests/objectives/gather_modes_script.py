"""torchrun script: gradients of the gathered losses (ITC, SCL completion of clips and of images) under
each gather_grad mode.

Every rank builds the same tiny parameters (seeded) and its own slice of inputs (`rank_inputs`),
runs the REAL loss code (`itc_loss`, `completion_contrast`), backpropagates, and averages the
parameter gradients over ranks as DDP does. Rank 0 saves {mode: {term: {param: grad}}} to --out;
the test recomputes them without any process group.
"""

from __future__ import annotations

import argparse

import torch
from torch import nn

B, F, D_IN, D, L, P = 3, 2, 6, 5, 4, 3  # per-rank batch, frames, input dim, feature dim, text / patch tokens


class TinyContrastive(nn.Module):
    """The two pieces of SCLModel that itc_loss uses: contrastive_features and cl_temp."""

    def __init__(self) -> None:
        super().__init__()
        self.text_proj, self.image_proj = nn.Linear(D_IN, D), nn.Linear(D_IN, D)
        self.cl_temp = nn.Parameter(torch.tensor(0.07))

    def contrastive_features(self, text: torch.Tensor, vision: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.text_proj(text), self.image_proj(vision)


def make_params() -> tuple[TinyContrastive, nn.Linear]:
    torch.manual_seed(0)
    return TinyContrastive(), nn.Linear(D_IN, D)


def rank_inputs(rank: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(100 + rank)
    x = lambda *shape: torch.randn(*shape, generator=g)  # noqa: E731
    text_sel = torch.rand(B, L, generator=g) < 0.5
    text_sel[0, 0] = True  # at least one masked token per rank
    image_sel = torch.rand(B, F, P, generator=g) < 0.5
    image_sel[0, 0, 0] = True
    return {
        "itc_text": x(B, D_IN),
        "itc_image": x(B, D_IN),
        "v_hat": x(B, F, D_IN),
        "v": x(B, F, D_IN),
        "t_hat": x(B, D_IN),
        "t": x(B, D_IN),
        "tt_pred": x(B, L, D_IN),
        "tt_target": x(B, L, D_IN),
        "it_pred": x(B, F, P, D_IN),
        "it_target": x(B, F, P, D_IN),
        "text_sel": text_sel,
        "image_sel": image_sel,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    from sclbench.engine import distributed as D_
    from sclbench.objectives.completion import CompletionConfig, completion_contrast
    from sclbench.objectives.itc import itc_loss

    D_.init_distributed("cpu")
    world = D_.world_size()
    inp = rank_inputs(D_.rank())
    result: dict = {}
    for mode in ("official", "local_slice", "exact"):
        result[mode] = {}
        for term in ("itc", "completion", "completion_image"):
            tiny, proj = make_params()
            if term == "itc":
                loss, _ = itc_loss(tiny, inp["itc_text"], inp["itc_image"], weight=0.5, gather_grad=mode)
                params = dict(tiny.named_parameters())
            else:  # completion: F-frame clips; completion_image: their first frame, an image batch
                frames = slice(None) if term == "completion" else slice(0, 1)
                cfg = CompletionConfig(gather_grad=mode)
                loss, _ = completion_contrast(
                    proj(inp["v_hat"][:, frames]),
                    proj(inp["v"][:, frames]),
                    proj(inp["t_hat"]),
                    proj(inp["t"]),
                    cfg,
                    (proj(inp["tt_pred"]), proj(inp["tt_target"]), inp["text_sel"]),
                    (proj(inp["it_pred"][:, frames]), proj(inp["it_target"][:, frames]), inp["image_sel"][:, frames]),
                )
                params = dict(proj.named_parameters())
            loss.backward()
            grads = {}
            for name, p in params.items():
                grad = p.grad.clone()
                torch.distributed.all_reduce(grad)  # DDP: mean over ranks
                grads[name] = grad / world
            result[mode][term] = grads
    if D_.is_main():
        torch.save({"world": world, "grads": result}, args.out)
    D_.cleanup()


if __name__ == "__main__":
    main()
