"""Data-parallel training over the processes `torchrun` starts: which process this is, and the two collective
operations the training loop needs. One process without `torchrun` is the `SINGLE_PROCESS` case."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

# Set by torchrun (and any launcher compatible with it) for every process it starts.
LAUNCHER_VARIABLES = ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")


@dataclass(frozen=True)
class Processes:
    """This process's place among the training processes."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """The process that validates, writes the run's files and prints."""
        return self.rank == 0

    @property
    def shard(self) -> tuple[int, int]:
        return self.rank, self.world_size


SINGLE_PROCESS = Processes()


def launched_by_torchrun() -> bool:
    return all(name in os.environ for name in LAUNCHER_VARIABLES)


def start(device_type: str) -> Processes:
    """Join the process group torchrun prepared: gloo on CPU, NCCL on CUDA."""
    dist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo")
    return Processes(dist.get_rank(), dist.get_world_size(), int(os.environ["LOCAL_RANK"]))


def stop(processes: Processes) -> None:
    if processes.world_size > 1 and dist.is_initialized():
        dist.destroy_process_group()


def sum_over_processes(values: list[float], processes: Processes, device: torch.device) -> list[float]:
    """Element-wise sums of `values` over all processes (each process passes its own)."""
    if processes.world_size == 1:
        return values
    totals = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(totals)
    return [float(total) for total in totals.cpu()]


def from_main(value: float, processes: Processes, device: torch.device) -> float:
    """The main process's `value`, in every process."""
    if processes.world_size == 1:
        return value
    shared = torch.tensor([value], dtype=torch.float64, device=device)
    dist.broadcast(shared, src=0)
    return float(shared.item())
