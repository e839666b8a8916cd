"""One module owns seeds: one accepted range, one message, and the derivations' numbers."""

from __future__ import annotations

import pytest
from lmd.layouts.seeds import (
    SEED_LIMIT,
    SHORT_SEED_LIMIT,
    check_seed,
    derive_seed,
    job_seed,
    new_seed,
    object_seed,
)

MESSAGE = "must be a whole number from 0 to 2**63 - 1 but is "


def test_every_derived_seed_keeps_the_numbers_earlier_versions_gave():
    # Pictures and sessions drawn before the seed rules moved here must come out the same.
    assert object_seed(0, "a cat", 0) == 4031389485826701607
    assert object_seed(1234, "a dog", 1) == 2977468347820289548
    assert job_seed(0, 12, 0) == 6271193188109598843
    assert job_seed(5, 0, 3) == 7760099336911183838
    assert derive_seed(1234, "obj1") == 1954583471
    assert derive_seed(1234, "background") == 176848862


@pytest.mark.parametrize("seed", [0, 1, 2**31, SEED_LIMIT - 1])
def test_the_whole_range_is_accepted(seed):
    assert check_seed(seed) == seed


@pytest.mark.parametrize("bad", [-1, SEED_LIMIT, 1.5, "3", True, None])
def test_anything_else_is_refused_with_one_message(bad):
    with pytest.raises(ValueError) as info:
        check_seed(bad, "background_seed")
    assert str(info.value) == f"`background_seed` {MESSAGE}{bad!r}"


@pytest.mark.parametrize(
    "call",
    [
        lambda: job_seed(-1, 0, 0),
        lambda: __import__("lmd.conversation", fromlist=["Conversation"]).Conversation(
            _Planner(), lambda request: None, seed=-1
        ),
    ],
    ids=["batch", "conversation"],
)
def test_each_place_that_takes_a_seed_says_the_same(call):
    with pytest.raises(ValueError, match=r"`seed` must be a whole number from 0 to 2\*\*63 - 1"):
        call()


def test_seeds_lmd_chooses_are_short():
    assert all(0 <= new_seed() < SHORT_SEED_LIMIT for _ in range(50))
    assert all(0 <= derive_seed(s, "obj1") < SHORT_SEED_LIMIT for s in (0, 7, SEED_LIMIT - 1))


def test_a_session_takes_any_seed_in_the_range(tmp_path):
    from lmd.conversation import Session

    big = SEED_LIMIT - 1
    path = Session(seed=big).save(tmp_path / "s.json")
    assert Session.load(path).seed == big


class _Planner:
    def plan_messages(self, caption):
        return []

    def edit_messages(self, history, request):
        return []

    def complete(self, messages):
        raise AssertionError("not asked")
