"""Draw a hand-written layout: stage 2 only, no LLM.

    python examples/render_layout.py --model random:tiny

Boxes are (x, y, width, height) in pixels on a 512 x 512 canvas; the picture can be any size
the model draws (the boxes scale with it).
"""

import argparse

from lmd import Box, Layout, Renderer, RenderSettings
from lmd.api import save_outputs

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--model", help="hub id, local folder, or random:tiny")
parser.add_argument("--steps", type=int, help="denoising steps (default 50)")
parser.add_argument("--method", default="lmd", choices=["lmd", "lmd+", "sd"])
parser.add_argument("--out", default="out/render_layout", help="folder for the files")
args = parser.parse_args()

layout = Layout(
    boxes=[
        Box(name="a grey cat", x=40, y=250, w=180, h=200),
        Box(name="a brown dog", x=280, y=200, w=200, h=260),
    ],
    background="A realistic photo of a sunny park",
    negative="blurry",
)
renderer = Renderer(RenderSettings(model=args.model, steps=args.steps, method=args.method))
result = renderer.render(layout, seed=7)
print(f"{result.generated} objects drawn in {result.seconds:.1f} s")
for path in save_outputs(args.out, result.image, layout).values():
    print("wrote", path)
