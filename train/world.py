"""Where this process stands in a run: one object that knows rank, local rank, world size, node and
device, read once from what torchrun sets (RANK, LOCAL_RANK, WORLD_SIZE, LOCAL_WORLD_SIZE,
GROUP_RANK, TORCHELASTIC_RESTART_COUNT). Global rank 0 writes checkpoints and logs; each node's local
rank 0 fills that node's decode cache.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    rank: int = 0            # global rank: 0 writes checkpoints and logs
    local_rank: int = 0      # rank on this node: 0 fills the node's cache
    size: int = 1            # processes in the run
    local_size: int = 1      # processes on this node
    node: int = 0            # this node's rank (torchrun's GROUP_RANK)
    device: str = "cpu"      # this process's device: cuda:LOCAL_RANK under torchrun on GPUs
    restarts: int = 0        # how often torchrun restarted this worker (--max-restarts)

    @property
    def main(self) -> bool:
        return self.rank == 0

    @property
    def node_main(self) -> bool:
        return self.local_rank == 0

    @property
    def nodes(self) -> int:
        return max(1, self.size // max(1, self.local_size))

    def barrier(self) -> None:
        if self.size > 1:
            dist.barrier()

    @classmethod
    def from_env(cls, device: str) -> World:
        """This process's place; under torchrun (LOCAL_RANK set) the process group is joined here
        (nccl on CUDA, gloo on the CPU) and a CUDA device is the one of the local rank."""
        if "LOCAL_RANK" not in os.environ:
            return cls(device=device, restarts=int(os.environ.get("TORCHELASTIC_RESTART_COUNT", 0) or 0))
        env = {name: int(os.environ.get(name, default)) for name, default in (
            ("LOCAL_RANK", 0), ("LOCAL_WORLD_SIZE", 1), ("GROUP_RANK", 0), ("TORCHELASTIC_RESTART_COUNT", 0))}
        if device == "cuda":
            torch.cuda.set_device(env["LOCAL_RANK"])
            device = f"cuda:{env['LOCAL_RANK']}"
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.startswith("cuda") else "gloo")
        return cls(dist.get_rank(), env["LOCAL_RANK"], dist.get_world_size(), env["LOCAL_WORLD_SIZE"],
                   env["GROUP_RANK"], device, env["TORCHELASTIC_RESTART_COUNT"])


def main_process() -> bool:
    """Whether this process prints a command's result: global rank 0, or no torchrun at all (read
    from the environment: usable before and after the process group exists)."""
    return os.environ.get("RANK", "0") == "0"


def restarted() -> bool:
    """Whether torchrun restarted this worker after a failure (`torchrun --max-restarts N`)."""
    return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") or 0) > 0
