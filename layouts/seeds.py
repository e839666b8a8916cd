"""Seeds: the one range lmd accepts, and every rule that derives a seed from others.

A seed is a whole number in [0, 2**63): torch's and numpy's generators take it, and it is
what a batch job's `meta.json` records. Each derived seed is a pure function of numbers a
file keeps, so a picture can be drawn again:
- `object_seeds`: each box's seed in one render (from the render seed, the box's name and
  which same-named box it is; or the paper's rule, by position in name order).
- `derive_seed`: a conversation's background and object seeds (from the session seed and a key).
- `job_seed`: a batch job's seed (from the batch seed, the prompt's index and the repeat).

Seeds lmd picks itself for people to read back (a new session's seed, a conversation's
derived seeds) stay below `SHORT_SEED_LIMIT`. Nothing here imports torch or numpy at import.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence

SEED_LIMIT = 2**63
"""Every seed lmd accepts is a whole number from 0 to `SEED_LIMIT - 1`."""
SEED_RANGE = "a whole number from 0 to 2**63 - 1"

SHORT_SEED_LIMIT = 2**31
"""Seeds lmd chooses for a conversation stay below this: short to read and type back."""


def is_seed(value: object) -> bool:
    """Whether `value` is a seed lmd accepts."""
    return isinstance(value, int) and not isinstance(value, bool) and 0 <= value < SEED_LIMIT


def seed_problem(value: object) -> str:
    """What is wrong with `value` as a seed, as the rest of a sentence that names it."""
    return f"must be {SEED_RANGE} but is {value!r}"


def check_seed(value: int, argument: str = "seed") -> int:
    """Return `value` if it is a seed, else raise `ValueError` naming `argument`."""
    if not is_seed(value):
        raise ValueError(f"`{argument}` {seed_problem(value)}")
    return value


def new_seed() -> int:
    """A random seed for a new conversation (below `SHORT_SEED_LIMIT`)."""
    return secrets.randbelow(SHORT_SEED_LIMIT)


def derive_seed(session_seed: int, key: str) -> int:
    """A conversation's seed for `key` (an object id, "background", ...), below 2**31."""
    digest = hashlib.sha256(f"{session_seed}/{key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % SHORT_SEED_LIMIT


def object_seed(seed: int, name: str, occurrence: int) -> int:
    """A 63-bit seed for the `occurrence`-th box called `name` in a render seeded `seed`."""
    digest = hashlib.sha256(f"{seed}\x00{name}\x00{occurrence}".encode()).digest()
    return int.from_bytes(digest[:8], "big") & (SEED_LIMIT - 1)


def object_seeds(
    seed: int,
    names: Sequence[str],
    explicit: Sequence[int | None] | None,
    *,
    by_index: bool = False,
    start: int = 20,
) -> list[int]:
    """Each box's seed: the caller's where given, else derived from the name and occurrence.

    `by_index` is the paper's rule: the k-th box in name order gets `start + k` (plus 12345
    where that equals the background seed), so adding a box reseeds every box after it.
    """
    if explicit is not None and len(explicit) != len(names):
        raise ValueError(
            f"`object_seeds` has {len(explicit)} entries but the layout has {len(names)} boxes"
        )
    rank = {i: k for k, i in enumerate(sorted(range(len(names)), key=lambda i: names[i]))}
    seen: dict[str, int] = {}
    out = []
    for i, name in enumerate(names):
        k = seen.get(name, 0)
        seen[name] = k + 1
        given = explicit[i] if explicit is not None else None
        if given is not None:
            out.append(int(given))
        elif by_index:
            derived = start + rank[i]
            out.append(derived + 12345 if derived == seed else derived)
        else:
            out.append(object_seed(seed, name, k))
    return out


def job_seed(base_seed: int, index: int, repeat: int) -> int:
    """A batch job's seed, from (batch seed, prompt index, repeat) alone: never from the
    process that draws it, so a batch gives the same pictures on any number of GPUs."""
    import numpy as np

    check_seed(base_seed)
    state = np.random.SeedSequence([base_seed, index, repeat]).generate_state(1, np.uint64)
    return int(state[0]) >> 1


def sub_seed(seed: int, *parts: int) -> int:
    """A 63-bit generator seed for one part of a render seeded `seed` (a step, a layer, an
    image...), the same for the same parts on any machine."""
    text = "/".join(str(p) for p in (seed, *parts))
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "big") & (2**63 - 1)
