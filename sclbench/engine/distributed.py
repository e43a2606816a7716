"""One code path for 1 and N processes.

Every helper works unchanged in a plain `python` process (world size 1: identities and no-ops) and
under `torchrun`, which is the ONLY launcher we support — multi-node rendezvous, restarts and
environment set-up are torchrun's job, not ours:

    # one machine, 8 GPUs (NCCL) or 8 CPU processes (gloo)
    torchrun --nproc_per_node=8 -m sclbench finetune vqa ...

    # two machines, 8 GPUs each: run on every node, same --rdzv_endpoint
    torchrun --nnodes=2 --nproc_per_node=8 --rdzv_backend=c10d \
             --rdzv_endpoint=HOST_OF_NODE0:29500 --rdzv_id=myrun -m sclbench finetune vqa ...

torchrun sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and MASTER_PORT; `init_distributed` reads
them (init_method "env://"). NCCL is used when CUDA is available, gloo otherwise.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any, NamedTuple

import torch
import torch.distributed as dist

from sclbench.errors import ConfigError


def is_initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


class TorchrunEnv(NamedTuple):
    """This process's place as torchrun wrote it in the environment, checked."""

    rank: int
    world_size: int
    local_rank: int


_LAUNCH_HINT = "torchrun sets it (`torchrun --nproc_per_node=N -m sclbench ...`); unset it to run one process"
_MAX_INT = 2**31 - 1  # c10d keeps ranks and sizes in C ints


def _env_int(name: str, minimum: int) -> int | None:
    """The whole number in environment variable `name` (None when unset); anything else is one error naming it.
    Whitespace around it is accepted, as torch's own int() reading does."""
    raw = os.environ.get(name)
    if raw is None:
        return None
    text = raw.strip()
    if not (text.isascii() and text.isdigit()) or int(text) < minimum or int(text) > _MAX_INT:
        raise ConfigError(
            f"environment variable {name}={raw!r} is not a whole number from {minimum} to {_MAX_INT}; {_LAUNCH_HINT}"
        )
    return int(text)


def torchrun_environment(rendezvous: bool = True) -> TorchrunEnv | None:
    """RANK / WORLD_SIZE / LOCAL_RANK (and, with `rendezvous`, MASTER_ADDR / MASTER_PORT), checked before
    anything reads them.

    None when neither RANK nor WORLD_SIZE is set (a plain process). A half-set, malformed or
    inconsistent launch is one ConfigError naming the variable, not a ValueError from deep inside
    init_process_group (or a rendezvous that waits for peers that will never come). Code that only
    asks for its rank before the process group exists passes rendezvous=False: the address is
    init_distributed's to need."""
    rank_, world = _env_int("RANK", 0), _env_int("WORLD_SIZE", 1)
    if rank_ is None and world is None:
        return None
    for name, value in (("RANK", rank_), ("WORLD_SIZE", world)):
        if value is None:
            other = "WORLD_SIZE" if name == "RANK" else "RANK"
            raise ConfigError(f"environment variable {other} is set but {name} is not; {_LAUNCH_HINT}")
    assert rank_ is not None and world is not None
    if rank_ >= world:
        raise ConfigError(f"environment variable RANK={rank_} is not below WORLD_SIZE={world}; {_LAUNCH_HINT}")
    for name in ("MASTER_ADDR", "MASTER_PORT") if rendezvous else ():
        if not os.environ.get(name, "").strip():
            raise ConfigError(
                f"environment variables RANK and WORLD_SIZE are set but {name} is "
                f"{'empty' if name in os.environ else 'not'}; {_LAUNCH_HINT}"
            )
    port = _env_int("MASTER_PORT", 1) if rendezvous else None
    if port is not None and port > 65535:
        raise ConfigError(f"environment variable MASTER_PORT={port} is not a port (1 to 65535); {_LAUNCH_HINT}")
    local = _env_int("LOCAL_RANK", 0)
    return TorchrunEnv(rank_, world, 0 if local is None else local)


def launched_by_torchrun() -> bool:
    return torchrun_environment(rendezvous=False) is not None


def launch_rank() -> int:
    """This process's rank before (or without) the process group: torchrun's RANK, checked; 0 alone."""
    env = torchrun_environment(rendezvous=False)
    return 0 if env is None else env.rank


def launch_world_size() -> int:
    """The world size before (or without) the process group: torchrun's WORLD_SIZE, checked; 1 alone."""
    env = torchrun_environment(rendezvous=False)
    return 1 if env is None else env.world_size


def local_rank() -> int:
    env = torchrun_environment(rendezvous=False)
    if env is not None:
        return env.local_rank
    local = _env_int("LOCAL_RANK", 0)  # some launchers set only this one for a single process
    return 0 if local is None else local


def init_distributed(device: str | torch.device | None = None, timeout_minutes: float = 30.0) -> torch.device:
    """Join the process group when launched by torchrun (idempotent); return this process's device.

    `device` None picks `cuda:LOCAL_RANK` when CUDA is available, else CPU; "cpu" forces CPU + gloo
    even on a GPU machine; "cuda" means `cuda:LOCAL_RANK`. Outside torchrun only the device is chosen.
    """
    wanted = torch.device(device) if device is not None else None
    if wanted is not None and wanted.type not in ("cpu", "cuda"):
        return wanted  # another accelerator (e.g. mps): single process, no process group
    cuda = torch.cuda.is_available() and (wanted is None or wanted.type == "cuda")
    device = torch.device("cpu")
    env = torchrun_environment()  # checked first: a bad launch is one error, whatever the device
    if cuda:
        index = local_rank() if wanted is None or wanted.index is None else wanted.index
        if index >= torch.cuda.device_count():
            raise ConfigError(
                f"{'LOCAL_RANK' if wanted is None or wanted.index is None else 'the device'} asks for "
                f"GPU {index}, but this machine shows {torch.cuda.device_count()} "
                "(CUDA_VISIBLE_DEVICES); start at most that many processes per node"
            )
        device = torch.device("cuda", index)
        torch.cuda.set_device(device)
    if env is not None and not is_initialized():
        dist.init_process_group(
            backend="nccl" if cuda else "gloo",
            init_method="env://",
            timeout=timedelta(minutes=timeout_minutes),
            # Binding NCCL to the device avoids the "guessing device" warnings and a wrong-GPU hang.
            **({"device_id": device} if cuda else {}),
        )
    return device


def rank() -> int:
    return dist.get_rank() if is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if is_initialized() else 1


def is_main() -> bool:
    return rank() == 0


def barrier() -> None:
    if is_initialized() and world_size() > 1:
        dist.barrier()


def cleanup() -> None:
    if is_initialized():
        dist.destroy_process_group()


GATHER_GRAD_MODES = ("official", "exact")


class _AllGatherWithGrad(torch.autograd.Function):
    """all_gather whose backward gives each rank the gradient of the SUM of all ranks' losses with
    respect to its own slice: all-reduce the incoming gradient, then keep our rows. Written by hand
    rather than with torch.distributed.nn because that one needs all_to_all/reduce_scatter, which
    gloo lacks."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        ctx.rows = tensor.shape[0]
        parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, tensor.contiguous())
        return torch.cat(parts, dim=0)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous()
        dist.all_reduce(grad, op=dist.ReduceOp.SUM)
        start = dist.get_rank() * ctx.rows
        return grad[start : start + ctx.rows]


class _AllGatherLocalGrad(_AllGatherWithGrad):
    """all_gather whose backward keeps only this rank's rows of its OWN loss's gradient, as the
    official `AllGather_multi` does: the other ranks' rows act as constants. After DDP's mean over
    ranks a gathered loss gets 1/world_size of the full-batch gradient (its official weight)."""

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        start = dist.get_rank() * ctx.rows
        return grad[start : start + ctx.rows]


def all_gather_with_grad(tensor: torch.Tensor, mode: str = "exact") -> torch.Tensor:
    """Concatenate `tensor` ([B, ...], same shape on every rank) from all ranks along dim 0, in rank
    order, keeping gradients.

    mode "exact": DDP then averages over ranks, so a loss computed on the gathered tensor gets the
    gradient of the mean over ranks — exactly what one process with the whole batch gets.
    mode "official": the local-slice gradient of the official code (see `_AllGatherLocalGrad`).
    """
    if mode not in GATHER_GRAD_MODES:
        raise ValueError(f"gather gradient mode {mode!r}; use one of {GATHER_GRAD_MODES}")
    if world_size() == 1:
        return tensor
    return (_AllGatherWithGrad if mode == "exact" else _AllGatherLocalGrad).apply(tensor)


def all_reduce_mean(tensor: torch.Tensor) -> torch.Tensor:
    """Mean over ranks (a copy; no gradient)."""
    if world_size() == 1:
        return tensor.detach().clone()
    out = tensor.detach().clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out / world_size()


def gather_objects(obj: Any) -> list[Any]:
    """Every rank's (picklable) `obj`, in rank order, on every rank."""
    if world_size() == 1:
        return [obj]
    out: list[Any] = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """Rank `src`'s `obj` on every rank."""
    if world_size() == 1:
        return obj
    box = [obj if rank() == src else None]
    dist.broadcast_object_list(box, src=src)
    return box[0]


# ---- tensor gathers (evaluation features and scores: never pickled) ------------------------------
def comm_device() -> torch.device:
    """Where this process group's collectives take their tensors: the current CUDA device under
    NCCL, else the CPU (gloo)."""
    if is_initialized() and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def all_gather_counts(count: int) -> list[int]:
    """Every rank's `count`, in rank order (one small integer collective)."""
    if world_size() == 1:
        return [int(count)]
    mine = torch.tensor([int(count)], dtype=torch.int64, device=comm_device())
    out = torch.empty(world_size(), dtype=torch.int64, device=mine.device)
    dist.all_gather_into_tensor(out, mine)
    return [int(c) for c in out.tolist()]


def all_reduce_max(values: list[int]) -> list[int]:
    """Element-wise maximum of small integer lists over ranks (e.g. a shape only some ranks know)."""
    if world_size() == 1:
        return [int(v) for v in values]
    t = torch.tensor([int(v) for v in values], dtype=torch.int64, device=comm_device())
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return [int(v) for v in t.tolist()]


def all_gather_rows(
    local: torch.Tensor, out: torch.Tensor, counts: list[int] | None = None, chunk_rows: int | None = None
) -> torch.Tensor:
    """Write every rank's rows of `local` ([n_r, ...], n_r may differ by rank) into `out`
    ([sum n_r, ...], any device, e.g. pinned host memory), in rank order, on every rank.

    Tensors travel as tensors (`all_gather_into_tensor`), never pickled: each round sends at most
    `chunk_rows` rows per rank (zero-padded to the same size on every rank, as the collective needs),
    so the only temporaries are one round's send buffer and its W-fold receive buffer on the
    communication device, whatever the size of `out`. `counts` (every rank's n_r) saves a collective
    when the caller knows them."""
    counts = all_gather_counts(len(local)) if counts is None else [int(c) for c in counts]
    world = len(counts)
    if len(out) != sum(counts) or tuple(out.shape[1:]) != tuple(local.shape[1:]):
        raise ValueError(
            f"all_gather_rows: out {tuple(out.shape)} does not hold {sum(counts)} rows of {tuple(local.shape[1:])}"
        )
    if world == 1:
        if len(local):
            out.copy_(local)
        return out
    most = max(counts)
    step = most if chunk_rows is None else max(1, min(int(chunk_rows), most))
    starts = [sum(counts[:r]) for r in range(world)]
    device = comm_device()
    for begin in range(0, most, step):
        n = min(step, most - begin)
        send = torch.zeros((n, *local.shape[1:]), dtype=local.dtype, device=device)
        mine = local[begin : begin + n]
        if len(mine):
            send[: len(mine)].copy_(mine)
        recv = torch.empty((world * n, *local.shape[1:]), dtype=local.dtype, device=device)
        dist.all_gather_into_tensor(recv, send)
        for r in range(world):
            valid = max(0, min(n, counts[r] - begin))
            if valid:
                out[starts[r] + begin : starts[r] + begin + valid].copy_(recv[r * n : r * n + valid])
    return out
