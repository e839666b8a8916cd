"""Prompts and the tokens each object is guided on."""

from lmd.controller.noise import Cells, centred, object_seeds, to_cells
from lmd.controller.prompts import (
    box_prompt,
    box_tokens,
    count_phrase,
    head_word_index,
    overall_phrases,
    overall_prompt,
    overall_tokens,
)


def test_overall_prompt_counts_identical_names():
    phrases, groups = overall_phrases(["a panda", "a gray cat", "a panda"])
    assert phrases == ["two pandas", "a gray cat"] and groups == [[0, 2], [1]]
    assert overall_prompt("a forest", phrases) == "a forest with two pandas, a gray cat"
    assert count_phrase("a cup of coffee", 3) == "three cups of coffee"
    assert count_phrase("a man", 2) == "two men" and count_phrase("a fox", 2) == "two foxes"
    assert box_prompt("a forest", "a panda") == "a forest with a panda"


def test_head_noun():
    assert head_word_index(["a", "cat", "wearing", "a", "hat"]) == 1
    assert head_word_index(["a", "big", "red", "ball"]) == 3


def ids(tokenizer, text):
    return tokenizer(text, padding="max_length", max_length=77, truncation=True).input_ids


def test_tokens_are_found_by_tokenizing(tiny_pipe):
    tok = tiny_pipe.tokenizer
    # "with" also appears in the name: string search on token text would be ambiguous.
    t = box_tokens(tok, "a table with flowers", "a cup with flowers")
    full = ids(tok, "a table with flowers with a cup with flowers")
    assert [full[i] for i in t.noun] == tok("cup", add_special_tokens=False).input_ids
    assert t.word == t.noun[-1]
    # A word the BPE splits into several tokens: all of them, the last as the word token.
    t = box_tokens(tok, "a park", "a zzyzzyva")
    assert len(t.noun) > 1
    full = ids(tok, "a park with a zzyzzyva")
    assert [full[i] for i in t.noun] == tok("zzyzzyva", add_special_tokens=False).input_ids
    phrases = ["two pandas", "a gray cat"]
    a, b = overall_tokens(tok, "a forest", phrases)
    full = ids(tok, overall_prompt("a forest", phrases))
    assert [full[i] for i in a.noun] == tok("pandas", add_special_tokens=False).input_ids
    assert [full[i] for i in b.noun] == tok("cat", add_special_tokens=False).input_ids


def test_tokens_past_the_encoder_limit_are_dropped(tiny_pipe):
    long = " ".join(["a very long background"] * 30)
    assert box_tokens(tiny_pipe.tokenizer, long, "a cat").noun == ()


def test_seeds_and_cells():
    s = object_seeds(0, ["a cat", "a dog", "a cat"], None)
    assert len(set(s)) == 3 and s == object_seeds(0, ["a cat", "a dog", "a cat"], None)
    assert object_seeds(0, ["a dog", "a cat"], None) == [s[1], s[0]]
    assert object_seeds(1, ["a cat"], None) != s[:1]
    cells = to_cells((0, 256, 256, 512), (512, 512), (64, 64))
    assert cells == Cells(0, 32, 32, 32)
    assert centred(cells, (64, 64), 0.8) == Cells(16, 19, 32, 32)
    assert to_cells((500, 0, 512, 3), (512, 512), (64, 64)).w >= 1  # never empty
