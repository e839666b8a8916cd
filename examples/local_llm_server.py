"""Plan with a local OpenAI-compatible LLM server (vLLM, Ollama, llama.cpp, LM Studio).

    vllm serve Qwen/Qwen2.5-7B-Instruct --port 8000      # or: ollama serve
    python examples/local_llm_server.py --llm-base-url http://localhost:8000/v1 \\
        --llm openai/Qwen/Qwen2.5-7B-Instruct --model random:tiny

`openai/NAME` tells litellm to speak the OpenAI protocol to the server; local servers accept
any API key. Replies are cached on disk, so a second run asks the server nothing.
"""

import argparse
import os

from lmd import Planner, Renderer, RenderSettings
from lmd.api import save_outputs

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("caption", nargs="?", default="three apples on a wooden table")
parser.add_argument(
    "--llm-base-url",
    default=os.environ.get("LMD_LLM_BASE_URL"),
    help="e.g. http://localhost:8000/v1 (default $LMD_LLM_BASE_URL)",
)
parser.add_argument("--llm", default=os.environ.get("LMD_LLM", "openai/qwen2.5-7b-instruct"))
parser.add_argument("--model", help="hub id, local folder, or random:tiny")
parser.add_argument("--steps", type=int, help="denoising steps (default 50)")
parser.add_argument("--out", default="out/local_llm_server", help="folder for the files")
args = parser.parse_args()
if not args.llm_base_url:
    parser.error("give --llm-base-url (or set LMD_LLM_BASE_URL)")

planner = Planner(model=args.llm, llm_base_url=args.llm_base_url, temperature=0.25)
plan = planner.complete(planner.plan_messages(args.caption))
print(f"{args.llm} at {args.llm_base_url} planned ({'cached' if plan.cached else 'asked'}):")
print(plan.layout.to_llm_text())
result = Renderer(RenderSettings(model=args.model, steps=args.steps)).render(plan.layout)
for path in save_outputs(args.out, result.image, plan.layout).values():
    print("wrote", path)
