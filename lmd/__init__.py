"""lmd: LLM-grounded Diffusion (LMD / LMD+).

Stage 2 (the layout-grounded diffusion controller), the public API and the CLI. Heavy modules
(torch, diffusers) are imported on first use, so `lmd plan` starts fast.
"""

__version__ = "0.1.0"
