"""Generate one picture from Python: the LLM plans a layout, LMD draws it.

    python examples/generate_one.py "a cat to the left of a dog on a beach"
    python examples/generate_one.py --model random:tiny   # no download: random weights

The LLM is $LMD_LLM (default gpt-4.1-mini, with OPENAI_API_KEY), or any litellm model
with --llm; point --llm-base-url (or $LMD_LLM_BASE_URL) at an OpenAI-compatible server.
"""

import argparse

from lmd import generate

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("caption", nargs="?", default="a cat to the left of a dog on a beach")
parser.add_argument("--model", help="hub id, local folder, or random:tiny")
parser.add_argument("--steps", type=int, help="denoising steps (default 50)")
parser.add_argument("--llm", help="litellm model string (default $LMD_LLM)")
parser.add_argument("--llm-base-url", help="an OpenAI-compatible server")
parser.add_argument("--out", default="out/generate_one", help="folder for the files")
args = parser.parse_args()

result = generate(
    args.caption,
    llm=args.llm,
    llm_base_url=args.llm_base_url,
    model=args.model,
    steps=args.steps,
    seed=1,
    out_dir=args.out,
)
print(result.layout.to_llm_text())
for path in result.files.values():
    print("wrote", path)
