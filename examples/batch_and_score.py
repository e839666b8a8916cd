"""Run a batch of the LMD benchmark and score it the way the paper does (OWL-ViT).

    python examples/batch_and_score.py --limit 1 --model random:tiny   # 4 prompts, no download

The same as `lmd batch lmd-benchmark -o DIR` then `lmd bench stage2 DIR`. Rerunning resumes:
planned prompts and drawn jobs are kept. Random weights give meaningless scores (the wiring
is what runs); with SD 1.5 / GLIGEN and OWL-ViT they are the paper's stage-2 numbers.
"""

import argparse

from lmd.prompts import Planner

from lmd import RenderSettings
from lmd.batch import drawn_jobs, read_prompts, run_batch
from lmd.bench.detector import load_detector
from lmd.bench.stage2 import batch_jobs, score_batch

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--limit", type=int, default=1, help="the first N prompts of each task")
parser.add_argument("--model", help="hub id, local folder, or random:tiny")
parser.add_argument("--method", default="lmd+", choices=["lmd", "lmd+", "sd"])
parser.add_argument("--steps", type=int, help="denoising steps (default 50)")
parser.add_argument("--llm", help="litellm model string (default $LMD_LLM)")
parser.add_argument("--llm-base-url", help="an OpenAI-compatible server")
parser.add_argument("--detector", help="OWL-ViT hub id or folder (random:tiny with random models)")
parser.add_argument("--out", default="out/batch_and_score", help="folder for the batch")
args = parser.parse_args()

settings = RenderSettings(model=args.model, method=args.method, steps=args.steps)
summary = run_batch(
    read_prompts("lmd-benchmark", limit=args.limit),
    args.out,
    planner=Planner(model=args.llm, llm_base_url=args.llm_base_url),
    settings=settings,
)
print("\n".join(summary.lines()))

random_models = (args.model or "").startswith("random:")
detector = load_detector(args.detector or ("random:tiny" if random_models else None))
report = score_batch(detector, batch_jobs(drawn_jobs(args.out)))
print("\n".join(report.lines()))
