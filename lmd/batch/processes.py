"""The processes of a batch: alone, or one per GPU through Hugging Face accelerate.

Under `accelerate launch` (or `lmd batch --num_processes N`, which calls it) every process
takes `accelerate.PartialState`'s place and device, as diffusers documents for distributed
inference; the main process plans, the others wait, and each draws its share of the jobs.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

# Stage 1 (many LLM calls) runs while the other processes wait at a barrier.
WAIT_LIMIT = timedelta(hours=24)


def _world_size() -> int:
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return 1


@dataclass
class Processes:
    """This process's place among the batch's processes."""

    index: int = 0
    count: int = 1
    device: str | None = None  # the device accelerate gave this process (None: alone)
    _state: Any = field(default=None, repr=False)

    @property
    def is_main(self) -> bool:
        return self.index == 0

    @classmethod
    def current(cls, device: str | None = None) -> Processes:
        """Alone, or this process's place under `accelerate launch` (torchrun underneath)."""
        if _world_size() <= 1:
            return cls()
        from accelerate import PartialState

        state = PartialState(cpu=on_cpu(device), timeout=WAIT_LIMIT)
        return cls(state.process_index, state.num_processes, str(state.device), state)

    def wait(self) -> None:
        """Wait until every process gets here."""
        if self._state is not None:
            self._state.wait_for_everyone()

    def broadcast(self, obj: Any) -> Any:
        """The main process's `obj`, in every process."""
        if self._state is None:
            return obj
        from accelerate.utils import broadcast_object_list

        box = [obj if self.is_main else None]
        broadcast_object_list(box)
        return box[0]

    def gather(self, obj: Any) -> list[Any]:
        """Every process's `obj`, in process order (in every process)."""
        if self._state is None:
            return [obj]
        from accelerate.utils import gather_object

        return gather_object([obj])


def launch(argv: Sequence[str], num_processes: int, *, cpu: bool) -> int:
    """Run `lmd ARGV` in `num_processes` processes through `accelerate launch` (torchrun, which
    also starts CPU processes; `accelerate launch --cpu` alone starts one, see
    `single_cpu_notice`). Returns the launcher's exit code."""
    import torch

    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--quiet",
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
        "--main_process_port", "0",
    ]  # fmt: skip
    if num_processes < 2:
        raise ValueError(f"`num_processes` must be 2 or more to launch, not {num_processes}")
    if not cpu and torch.cuda.device_count() < num_processes:
        raise ValueError(
            f"--num_processes {num_processes} needs {num_processes} GPUs but "
            f"{torch.cuda.device_count()} are visible; use --device cpu for CPU processes"
        )
    command += ["--multi_gpu", "--num_processes", str(num_processes)]
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")  # torchrun's own default, stated
    return subprocess.run([*command, "-m", "lmd", *argv], env=env).returncode


def single_cpu_notice() -> str | None:
    """A note when `accelerate launch --cpu --num_processes N` started one process only (it
    needs MPI for more: accelerate issue #2741), else None."""
    asked_cpu = os.environ.get("ACCELERATE_USE_CPU", "").lower() in ("1", "true", "yes")
    launched_several = "MASTER_ADDR" in os.environ and _world_size() <= 1
    if asked_cpu and launched_several:
        return (
            "accelerate launch --cpu started one process (several CPU processes need MPI); "
            "for N CPU processes use `lmd batch ... --num_processes N --device cpu` or "
            "`accelerate launch --multi_gpu --num_processes N -m lmd batch ...`"
        )
    return None


def on_cpu(device: str | None) -> bool:
    """Whether processes for `--device device` run on the CPU (asked, or no CUDA here)."""
    import torch

    return (device or "").startswith("cpu") or not torch.cuda.is_available()
