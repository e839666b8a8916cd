"""A multi-turn conversation in code: ask for a picture, then edit it turn by turn.

    python examples/conversation.py --model random:tiny

Each turn edits the layout (not the pixels); objects keep their seeds, and an object that only
moved is reused rather than drawn again. The session is saved after every turn.
"""

import argparse

from lmd import Conversation, Planner, Renderer, RenderSettings

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--model", help="hub id, local folder, or random:tiny")
parser.add_argument("--steps", type=int, help="denoising steps (default 50)")
parser.add_argument("--llm", help="litellm model string (default $LMD_LLM)")
parser.add_argument("--llm-base-url", help="an OpenAI-compatible server")
parser.add_argument("--out", default="out/conversation", help="folder for the pictures")
args = parser.parse_args()

chat = Conversation(
    Planner(model=args.llm, llm_base_url=args.llm_base_url),
    Renderer(RenderSettings(model=args.model, steps=args.steps)),
    session_path=f"{args.out}/session.json",
    out_dir=args.out,
)
for request in ["a red car in front of a house", "move the car to the left", "add a dog"]:
    turn = chat.send(request)
    print(f"{request!r}: {turn.summary} ({turn.generated} drawn, {turn.reused} reused)")
chat.undo()
print("after undo:", chat.current.layout.names)
print("session saved in", chat.session_path)
