"""MIGC, the multi-instance generation controller (Zhou et al., "MIGC: Multi-Instance Generation
Controller for Text-to-Image Synthesis", CVPR 2024, arXiv 2402.05408), and MIGC++ (TPAMI 2024):
a trained adapter in the cross-attention of the mid block and the first up block that shades
each instance on its own box and aggregates the shadings with the global prompt's.

- `modules`: the building blocks (Fourier box tokens, masked multi-head attention, gates);
- `shader`: one MIGC layer (`InstanceShader`), MIGC++'s variant and the naive fuser;
- `masks`: the instance and background masks, built from boxes as the authors build them;
- `processor`: the diffusers attention processor a method installs for a phase, and the
  per-call state it reads (`MIGCState`, `RowInstances`);
- `checkpoint`: the published checkpoints by their own names, and random weights.

Written for lmd from the paper and from reading the authors' code (limuloo/MIGC, commit
effd6cc2e6a9f7d2fe34409c300a5f037a87b9ec, non-commercial research licence); none of that
code is in lmd. `tests/test_migc_parity.py` checks one layer against a recording of it.
"""

from lmd.controller.methods.migc.checkpoint import (
    MIGC,
    MIGC_PLUS,
    MIGCCheckpointError,
    load_shaders,
    migc_layers,
    random_shaders,
    save_checkpoint,
)
from lmd.controller.methods.migc.masks import box_masks
from lmd.controller.methods.migc.processor import (
    MIGCProcessor,
    MIGCState,
    RowInstances,
    processors,
    row_instances,
)
from lmd.controller.methods.migc.shader import InstanceShader, fuse

__all__ = [
    "MIGC", "MIGC_PLUS", "InstanceShader", "MIGCCheckpointError", "MIGCProcessor", "MIGCState",
    "RowInstances", "box_masks", "fuse", "load_shaders", "migc_layers", "processors",
    "random_shaders", "row_instances", "save_checkpoint",
]  # fmt: skip
