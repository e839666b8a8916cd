"""Prompts and the tokens each object is guided on."""

from lmd.controller.captions import (
    TokenRule,
    box_prompt,
    box_tokens,
    count_phrase,
    head_word_index,
    overall_phrases,
    overall_prompt,
    overall_tokens,
)
from lmd.controller.noise import Cells, centred, object_seeds, to_cells


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


HEAD = TokenRule(energy="head")


def test_tokens_are_found_by_tokenizing(tiny_pipe):
    tok = tiny_pipe.tokenizer
    # "with" also appears in the name: string search on token text would be ambiguous.
    t = box_tokens(tok, "a table with flowers", "a cup with flowers", HEAD)
    full = ids(tok, "a table with flowers with a cup with flowers")
    assert [full[i] for i in t.guided] == tok("cup", add_special_tokens=False).input_ids
    assert t.word == t.guided[-1]
    # A word the BPE splits into several tokens: all of them, the last as the word token.
    t = box_tokens(tok, "a park", "a zzyzzyva", HEAD)
    assert len(t.guided) > 1
    full = ids(tok, "a park with a zzyzzyva")
    assert [full[i] for i in t.guided] == tok("zzyzzyva", add_special_tokens=False).input_ids
    phrases = ["two pandas", "a gray cat"]
    a, b = overall_tokens(tok, "a forest", phrases, HEAD)
    full = ids(tok, overall_prompt("a forest", phrases))
    assert [full[i] for i in a.guided] == tok("pandas", add_special_tokens=False).input_ids
    assert [full[i] for i in b.guided] == tok("cat", add_special_tokens=False).input_ids


def test_the_energy_takes_every_token_of_the_phrase_by_default(tiny_pipe):
    tok = tiny_pipe.tokenizer
    t = box_tokens(tok, "a park", "a red car")  # the paper's code: "a", "red" and "car"
    full = ids(tok, "a park with a red car")
    assert [full[i] for i in t.guided] == tok("a red car", add_special_tokens=False).input_ids
    assert full[t.word] == tok("car", add_special_tokens=False).input_ids[-1]
    a, b = overall_tokens(tok, "a forest", ["two pandas", "a gray cat"])
    full = ids(tok, "a forest with two pandas, a gray cat")
    assert [full[i] for i in a.guided] == tok("two pandas", add_special_tokens=False).input_ids
    assert [full[i] for i in b.guided] == tok("a gray cat", add_special_tokens=False).input_ids


def test_the_papers_word_token_is_the_last_word_not_the_head_noun(tiny_pipe):
    """`word_token` "last" (the paper's): the mask of "a dog wearing a hat" is the hat's."""
    tok = tiny_pipe.tokenizer
    full = ids(tok, "a park with a dog wearing a hat")
    ours = box_tokens(tok, "a park", "a dog wearing a hat")
    paper = box_tokens(tok, "a park", "a dog wearing a hat", TokenRule(word="last"))
    assert full[ours.word] == tok("dog", add_special_tokens=False).input_ids[-1]
    assert full[paper.word] == tok("hat", add_special_tokens=False).input_ids[-1]
    assert ours.guided == paper.guided  # the energy's tokens do not depend on it


def test_the_papers_token_search_can_land_in_the_background(tiny_pipe):
    """`token_search` "first" (the paper's): "a dog" is found in the background "a dog park"."""
    tok = tiny_pipe.tokenizer
    ours = box_tokens(tok, "a dog park", "a dog")
    paper = box_tokens(tok, "a dog park", "a dog", TokenRule(search="first"))
    n = len(tok("a dog park with", add_special_tokens=False).input_ids)
    assert ours.guided == (n + 1, n + 2)  # after <start> and the background
    assert paper.guided == (1, 2)  # the background's own "a dog"
    elsewhere = box_tokens(tok, "a park", "a dog", TokenRule(search="first"))
    assert elsewhere == box_tokens(tok, "a park", "a dog")  # no earlier match: the same


def test_tokens_past_the_encoder_limit_are_dropped(tiny_pipe):
    long = " ".join(["a very long background"] * 30)
    t = box_tokens(tiny_pipe.tokenizer, long, "a cat")
    assert t.guided == () and t.word is None


def test_the_paper_sorts_the_overall_prompt_and_seeds_by_name():
    names = ["a panda", "a cat", "a panda"]
    assert overall_phrases(names) == (["two pandas", "a cat"], [[0, 2], [1]])
    assert overall_phrases(names, sort=True) == (["a cat", "two pandas"], [[1], [0, 2]])
    # The paper's seeds: fg_seed_start + rank by name; 12345 more where that is the bg seed.
    assert object_seeds(21, names, None, by_index=True, start=20) == [
        21 + 12345, 20, 22,
    ]  # fmt: skip


def test_seeds_and_cells():
    s = object_seeds(0, ["a cat", "a dog", "a cat"], None)
    assert len(set(s)) == 3 and s == object_seeds(0, ["a cat", "a dog", "a cat"], None)
    assert object_seeds(0, ["a dog", "a cat"], None) == [s[1], s[0]]
    assert object_seeds(1, ["a cat"], None) != s[:1]
    cells = to_cells((0, 256, 256, 512), (512, 512), (64, 64))
    assert cells == Cells(0, 32, 32, 32)
    assert centred(cells, (64, 64), 0.8) == Cells(16, 19, 32, 32)
    assert to_cells((500, 0, 512, 3), (512, 512), (64, 64)).w >= 1  # never empty
