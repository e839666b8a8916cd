"""Object names ending in punctuation ("a cat.", "a dog!") are normalised at the layout
boundary, so the controller finds every accepted name's tokens in the overall prompt."""

import warnings

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lmd.layouts import Box, LayoutWarning, parse

from lmd.controller.captions import box_tokens, overall_phrases, overall_prompt, overall_tokens
from lmd.random_pipeline import build_tokenizer

TOKENIZER = build_tokenizer()  # the real CLIP BPE of random:tiny, no model weights

# Letters of several scripts, digits, punctuation, symbols (emoji), combining marks.
_chars = st.characters(categories=["L", "N", "P", "S", "M"], exclude_characters="\x00")
raw_names = st.lists(st.text(_chars, min_size=1, max_size=6), min_size=1, max_size=3).map(" ".join)


def _box(name: str) -> Box | None:
    try:
        return Box(name=name, x=0, y=0, w=1, h=1)
    except ValueError:  # no letter or digit at all: the model refuses it
        return None


@given(st.lists(raw_names, min_size=1, max_size=4), st.sampled_from(["a park", "a park."]))
@settings(max_examples=100, deadline=None)
def test_every_name_the_layout_model_accepts_has_tokens_in_the_prompts(names, background):
    boxes = [b for b in map(_box, names) if b is not None]
    accepted = [b.name for b in boxes]
    if not accepted:
        return
    phrases, _ = overall_phrases(accepted)
    prompt = overall_prompt(background, phrases)
    fits = len(TOKENIZER(prompt)["input_ids"]) <= TOKENIZER.model_max_length
    for tokens in overall_tokens(TOKENIZER, background, phrases):  # never "cannot find"
        assert tokens.guided or not fits  # past the 77th token a name cannot be guided
    for name in accepted:
        box_tokens(TOKENIZER, background, name)


def test_names_are_normalised_so_the_tokenizer_sees_what_the_model_checked():
    assert Box(name="cafe\u0301", x=0, y=0, w=1, h=1).name == "caf\u00e9"  # NFC, accent kept
    assert Box(name="a big İ", x=0, y=0, w=1, h=1).name == "a big İ"  # lower-cased: i + a mark
    phrases, _ = overall_phrases(["caf\u00e9", "a big İ"])
    assert len(overall_tokens(TOKENIZER, "a park", phrases)) == 2


def test_a_name_ending_in_a_vowel_sign_is_kept_whole_and_found_in_the_overall_prompt():
    cat = "बिल्ली"  # ends in U+0940, a spacing combining mark
    assert Box(name=cat + "।", x=0, y=0, w=1, h=1).name == cat  # the danda goes, the sign stays
    phrases, _ = overall_phrases([cat, "a dog"])
    prompt = overall_prompt("a park", phrases)
    assert prompt == f"a park with {cat} , a dog"  # ", " would fuse the sign and the comma
    ids = TOKENIZER(prompt)["input_ids"]
    first, second = overall_tokens(TOKENIZER, "a park", phrases)
    assert [ids[i] for i in first.guided] == TOKENIZER(cat, add_special_tokens=False)["input_ids"]
    assert [ids[i] for i in second.guided] == TOKENIZER("a dog", add_special_tokens=False)[
        "input_ids"
    ]
    fused = f"a park with {cat}, a dog"
    assert TOKENIZER(fused)["input_ids"][: len(ids)] != ids


def test_raw_punctuated_names_are_what_broke_the_token_search():
    """The defect itself: unnormalised names merge with ', ' and are not found."""
    with pytest.raises(ValueError, match="cannot find token ids"):
        overall_tokens(TOKENIZER, "a park", ["a cat.", "a dog!"])
    phrases, _ = overall_phrases(
        [Box(name=n, x=0, y=0, w=1, h=1).name for n in ("a cat.", "a dog!")]
    )
    assert len(overall_tokens(TOKENIZER, "a park", phrases)) == 2


def test_a_layout_with_punctuated_names_renders_on_random_tiny(tiny_pipe):
    from lmd.controller import Controller, LMDConfig

    with warnings.catch_warnings():
        warnings.simplefilter("error", LayoutWarning)
        layout = parse(
            "Objects: [('a cat.', [40, 220, 160, 200]), ('a dog!', [300, 150, 180, 260]), "
            "('a red ball...', [200, 400, 80, 80]), ('a cat.', [40, 20, 100, 100])]\n"
            "Background prompt: a grassy park.\nNegative prompt: dark"
        )
    assert layout.names == ["a cat", "a dog", "a red ball", "a cat"]
    controller = Controller(tiny_pipe, LMDConfig(steps=3), model_id="random:tiny")
    result = controller.render(layout, seed=1, height=128, width=128)
    assert result.image.size == (128, 128) and result.generated == 4
