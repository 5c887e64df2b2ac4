"""torchrun support: join the process group the launcher describes, sum integer counts, gather lists.

NCCL on GPUs, gloo on the CPU. Without torchrun's variables everything degrades to one process.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def from_env() -> DistContext:
    """Rank and world size as torchrun sets them (single process when absent)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistContext()
    return DistContext(int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0")))


def device_for_rank(spec: str, ctx: DistContext):
    """The `--device` choice for this rank: under torchrun each rank takes the GPU of its LOCAL_RANK."""
    import torch

    from nnprobe.device import resolve_device

    dev = resolve_device(spec)
    if ctx.enabled and dev.type == "cuda":
        dev = torch.device("cuda", ctx.local_rank)
        torch.cuda.set_device(dev)
    return dev


_created = 0  # process groups `init` has created in this process (all ranks make the same calls)


def init(ctx: DistContext, device_type: str) -> bool:
    """Join the process group with the backend that suits the device; True when this call created it
    (and so must destroy it). A group the caller already made is used as it is, if it matches torchrun's."""
    if not ctx.enabled:
        return False
    import torch.distributed as dist

    if dist.is_initialized():
        if (dist.get_rank(), dist.get_world_size()) != (ctx.rank, ctx.world_size):
            from nnprobe.errors import UsageError

            raise UsageError(f"The process group already initialised is rank {dist.get_rank()} of "
                             f"{dist.get_world_size()}, but torchrun's RANK/WORLD_SIZE say {ctx.rank} of "
                             f"{ctx.world_size}; initialise it from the same environment or not at all.")
        return False
    global _created
    _created += 1
    # A fresh key prefix per group: destroy_process_group resets torch's group counter, so a second group
    # on the same store would reuse the first one's keys and a rank could read a stale peer address.
    store, _, _ = next(dist.rendezvous("env://", ctx.rank, ctx.world_size))
    backend = "nccl" if device_type == "cuda" else "gloo"
    dist.init_process_group(backend=backend, store=dist.PrefixStore(f"nnprobe/{_created}", store), rank=ctx.rank,
                            world_size=ctx.world_size)
    return True


def sum_tensor(tensor, ctx: DistContext):
    """Sum a tensor of counts over ranks, in place (int64 counts stay exact)."""
    if ctx.enabled:
        import torch.distributed as dist

        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def gather_objects(obj: Any, ctx: DistContext) -> list[Any]:
    if not ctx.enabled:
        return [obj]
    import torch.distributed as dist

    out: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(out, obj)
    return out


def finish(created: bool, clean: bool = True) -> None:
    """Destroy the process group only if `init` created it: after a barrier when every rank got here,
    at once after an error (a barrier could wait forever for a rank that failed elsewhere)."""
    if not created:
        return
    import torch.distributed as dist

    if dist.is_initialized():
        if clean:
            dist.barrier()
        dist.destroy_process_group()


# ---- who speaks at the end --------------------------------------------------------------------------
# Rank 0 alone speaks (cli). torchrun (and --nproc, the same elastic agent) stops every rank as soon as one
# fails, so a silent rank that fails first (the same usage error found a moment earlier) got rank 0 killed
# before its sentence. A silent rank that is about to fail waits, at most SPEAK_WAIT seconds, until rank 0
# has said what it had to; the agent's own key-value store carries that one bit (it outlives every rank).
SPEAK_WAIT = 30.0


def _agent_store(seconds: float):
    """The launcher agent's TCPStore (torchrun's, where TORCHELASTIC_USE_AGENT_STORE says workers are its
    clients), or None: another launcher's store lives in rank 0, which may be gone."""
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True":
        return None
    from datetime import timedelta

    import torch.distributed as dist

    try:
        return dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), is_master=False,
                             timeout=timedelta(seconds=seconds))
    except (KeyError, ValueError, RuntimeError):  # no agent there (any more): nobody to tell or wait for
        return None


def _spoken_key() -> str:
    return f"nnprobe/spoken/{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}"  # one per attempt


def main_has_spoken() -> None:
    """Rank 0, at its end: let the silent ranks waiting in `wait_for_main` go."""
    store = _agent_store(5.0)
    if store is not None:
        try:
            store.set(_spoken_key(), "1")
        except RuntimeError:
            pass


def wait_for_main(seconds: float | None = None) -> bool:
    """A silent rank about to exit with an error: wait until rank 0 has spoken (at most `seconds`, default
    SPEAK_WAIT). False only when the agent's store is there and rank 0 did not say so in time (it may be
    blocked waiting for this rank): the caller speaks. Without an agent store there is nothing to wait for."""
    seconds = SPEAK_WAIT if seconds is None else seconds
    store = _agent_store(seconds)
    if store is None:
        return True
    from datetime import timedelta

    try:
        store.wait([_spoken_key()], timedelta(seconds=seconds))
        return True
    except RuntimeError:  # timed out (torch's DistStoreError is a RuntimeError), or the agent went away
        return False
