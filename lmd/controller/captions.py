"""Prompts of the per-box and overall generations, and the tokens each object is guided on.

Per box: `"{background} with {name}"`. Overall: `"{background} with {phrases}"`, identical
names counted ("a panda" x2 -> "two pandas"). An object's tokens are found by tokenizing:
the prompt is built from pieces, the token count of the text before a name gives where the
name's tokens start, and the ids there are checked against the name tokenized alone (with a
search over ids, never over token text, when a tokenizer merges across the boundary). The
paper's code instead takes the first match of the phrase's token text anywhere in the prompt
(`TokenRule.search` "first"), which can be a word of the background.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Any

from lmd.layouts.words import plural

# Words after which a name stops describing its head noun ("a cup of coffee" -> "cup").
_POST_HEAD = frozenset(
    ("with", "of", "in", "on", "at", "under", "over", "behind", "beside", "near", "by", "from",
     "for", "that", "which", "who", "wearing", "holding", "carrying", "sitting", "standing",
     "lying", "riding", "eating", "made")
)  # fmt: skip
_ARTICLES = ("a ", "an ", "the ", "one ")
_NUMBERS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
            "eleven", "twelve")  # fmt: skip


def head_word_index(words: list[str]) -> int:
    """Index of the head noun of a name: the last word before a preposition or participle."""
    for i, word in enumerate(words):
        if i > 0 and word.lower() in _POST_HEAD:
            return i - 1
    return len(words) - 1


def count_phrase(name: str, count: int) -> str:
    """`name` as the overall prompt says it: itself once, "two pandas" for two "a panda"."""
    if count == 1:
        return name
    low = name.lower()
    for article in _ARTICLES:
        if low.startswith(article):
            name = name[len(article) :]
            break
    words = name.split()
    h = head_word_index(words)
    words[h] = plural(words[h])
    number = _NUMBERS[count] if count < len(_NUMBERS) else str(count)
    return " ".join([number, *words])


def box_prompt(background: str, name: str) -> str:
    return f"{background} with {name}"


def overall_phrases(names: list[str], sort: bool = False) -> tuple[list[str], list[list[int]]]:
    """Unique names (first-seen order, or sorted as the paper's code) as counted phrases, and
    the boxes of each."""
    groups: dict[str, list[int]] = {}
    for i, name in enumerate(names):
        groups.setdefault(name, []).append(i)
    order = sorted(groups) if sort else list(groups)
    phrases = [count_phrase(name, len(groups[name])) for name in order]
    return phrases, [groups[name] for name in order]


def overall_prompt(background: str, phrases: list[str]) -> str:
    """`background with p1, p2, ...`; a phrase ending in a combining mark gets a space
    before its comma (`p1 , p2`), else CLIP's tokenizer reads the mark and the comma as one
    token and the phrase's own last token is not in the prompt."""
    if not phrases:
        return background
    return f"{background} with " + "".join(p + _separator(p) for p in phrases[:-1]) + phrases[-1]


def _separator(phrase: str) -> str:
    last = phrase.lower()[-1:]  # the tokenizer lower-cases: "İ" becomes "i" and a mark
    return " , " if last and unicodedata.category(last)[0] == "M" else ", "


@dataclass(frozen=True)
class TokenSpace:
    """Where a tokenizer's tokens sit in the denoiser's text sequence: the encoder reads
    `length` tokens (None: the tokenizer's `model_max_length`), the first at `offset`."""

    tokenizer: Any
    length: int | None = None
    offset: int = 0

    @property
    def max_tokens(self) -> int:
        return self.length or self.tokenizer.model_max_length


def token_space(tokenizer: Any) -> TokenSpace:
    """`tokenizer` as a `TokenSpace` (a bare tokenizer: its own length, at offset 0)."""
    return tokenizer if isinstance(tokenizer, TokenSpace) else TokenSpace(tokenizer)


@dataclass(frozen=True)
class Tokens:
    """Token positions of one object in a prompt (positions in the denoiser's text sequence)."""

    guided: tuple[int, ...]  # the tokens the energy is averaged over (phrase or head noun)
    word: int | None  # the word token: mask attention and attention transfer


@dataclass(frozen=True)
class TokenRule:
    """Which tokens an object gets (`LMDConfig.energy_tokens`, `word_token`, `token_search`)."""

    energy: str = "phrase"  # "phrase": every token of the phrase; "head": the head noun's
    word: str = "head"  # "head": the head noun's last token; "last": the last word's (paper)
    search: str = "position"  # "position": where the phrase was put; "first": first match

    @classmethod
    def of(cls, config) -> TokenRule:
        return cls(config.energy_tokens, config.word_token, config.token_search)


def _ids(tokenizer, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def _lead(tokenizer) -> int:
    """How many special tokens come before the text (CLIP's beginning-of-text: 1; T5: 0)."""
    bare, full = _ids(tokenizer, "a"), tokenizer("a")["input_ids"]
    return next((k for k in range(len(full) - len(bare) + 1) if full[k : k + len(bare)] == bare), 0)


def locate(
    tokenizer, prompt: str, phrase: str, start_char: int, rule: TokenRule | None = None
) -> Tokens:
    """Tokens of `phrase` (per `rule`), where `phrase` sits at `prompt[start_char:]`;
    `tokenizer` is a tokenizer or a `TokenSpace`."""
    rule = rule or TokenRule()
    space = token_space(tokenizer)
    tokenizer, lead = space.tokenizer, _lead(space.tokenizer)
    limit = space.max_tokens - 1  # the last position is the end-of-text token
    ids = _ids(tokenizer, prompt)
    phrase_ids = _ids(tokenizer, phrase)
    start = _first_match(tokenizer, ids, phrase_ids, lead) if rule.search == "first" else None
    if start is None:
        start = lead + len(_ids(tokenizer, prompt[:start_char])) if start_char else lead
        if ids[start - lead : start - lead + len(phrase_ids)] != phrase_ids:
            start = lead + _find(ids, phrase_ids, start - lead)
    words = phrase.split()
    h = head_word_index(words)
    end = start + len(_ids(tokenizer, " ".join(words[: h + 1])))
    noun = range(end - len(_ids(tokenizer, words[h])), end)
    span = range(start, start + len(phrase_ids))
    guided = tuple(i for i in (span if rule.energy == "phrase" else noun) if i < limit)
    if rule.word == "last":  # the paper's: the last word's last token, first seen in the phrase
        last = _ids(tokenizer, words[-1])[-1]
        candidates = [start + phrase_ids.index(last) if last in phrase_ids else span[-1]]
    else:
        candidates = list(noun)
    kept = [i for i in candidates if i < limit]
    word = kept[-1] + space.offset if kept and guided else None
    return Tokens(guided=tuple(i + space.offset for i in guided), word=word)


def _first_match(tokenizer, ids: list[int], phrase_ids: list[int], lead: int) -> int | None:
    """The paper's search: the phrase's token text found in the prompt's, first match."""
    first = tokenizer("a")["input_ids"][:lead]  # the special tokens before the text
    tokens = tokenizer.convert_ids_to_tokens([*first, *ids])
    text, sub = " ".join(tokens), " ".join(tokenizer.convert_ids_to_tokens(phrase_ids))
    at = text.find(sub)
    if at == 0 and not lead:
        return 0
    return None if at < 1 else len(text[: at - 1].split(" "))


def _find(ids: list[int], sub: list[int], near: int) -> int:
    hits = [i for i in range(len(ids) - len(sub) + 1) if ids[i : i + len(sub)] == sub]
    if not hits:
        raise ValueError(f"cannot find token ids {sub} in the prompt's ids {ids}")
    return min(hits, key=lambda i: abs(i - near))


def box_tokens(tokenizer, background: str, name: str, rule: TokenRule | None = None) -> Tokens:
    prompt = box_prompt(background, name)
    return locate(tokenizer, prompt, name, len(prompt) - len(name), rule)


def overall_tokens(
    tokenizer, background: str, phrases: list[str], rule: TokenRule | None = None
) -> list[Tokens]:
    prompt = overall_prompt(background, phrases)
    out, pos = [], len(f"{background} with ")
    for phrase in phrases:
        out.append(locate(tokenizer, prompt, phrase, pos, rule))
        pos += len(phrase) + len(_separator(phrase))
    return out
