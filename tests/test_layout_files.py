"""Layout files that are wrong say which file, which line and where (`lmd render`)."""

from __future__ import annotations

import pytest
from lmd.layouts import LayoutParseError, load_layout
from PIL import Image

from lmd.cli import run

MISSING_QUOTE = (
    "Objects: [('a grey cat', [40, 260, 160, 160]), ('a brown dog, [280, 240, 180, 200])]\n"
    "Background prompt: A realistic photo of a park\n"
)


def test_a_picture_given_as_a_layout_is_named_and_recognised(tmp_path, capsys):
    picture = tmp_path / "image.png"
    Image.new("RGB", (8, 8)).save(picture)
    assert run(["render", str(picture), "-o", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: {str(picture)!r} is a PNG image, not a layout file")
    assert "codec" not in err and "0x89" not in err and len(err.splitlines()) == 1


def test_bytes_that_are_no_text_say_so_with_the_file_name(tmp_path):
    blob = tmp_path / "layout.json"
    blob.write_bytes(b'{"boxes": [], "background": "a \xff park"}')
    with pytest.raises(LayoutParseError, match=r"layout.json' is not UTF-8 text \(byte 0xff"):
        load_layout(blob)


def test_a_missing_quote_names_the_file_and_shows_the_line_with_a_caret(tmp_path, capsys):
    path = tmp_path / "cat.txt"
    path.write_text("\n" + MISSING_QUOTE)  # the problem is on line 2
    assert run(["render", str(path), "-o", str(tmp_path / "out")]) == 1
    error, line, caret = capsys.readouterr().err.splitlines()
    assert error == f"error: {str(path)!r} line 2, column 49: a string is never closed"
    assert line == "  " + MISSING_QUOTE.splitlines()[0]
    assert line[caret.index("^") :].startswith("'a brown dog,")


def test_a_missing_comma_in_json_points_at_the_spot(tmp_path):
    path = tmp_path / "layout.json"
    path.write_text('{"boxes": [{"name": "猫", "box": [1, 2, 3, 4]} {"name": "b"}],\n'
                    ' "background": "x"}')  # fmt: skip
    with pytest.raises(LayoutParseError) as info:
        load_layout(path)
    assert str(info.value) == f"{str(path)!r} line 1, column 47: expected ',' or ']'"
    line, caret = info.value.details
    assert caret.index("^") == 2 + 46 + 1  # the wide 猫 takes two columns on a terminal
    assert line[2:].startswith('{"boxes"')


def test_a_long_line_is_cut_around_the_spot(tmp_path):
    boxes = ", ".join(f"('box {i}', [1, 2, 3, 4])" for i in range(40))
    path = tmp_path / "long.txt"
    path.write_text(f"Objects: [{boxes}, ('bad', [1, 2 3, 4])]\nBackground prompt: x\n")
    with pytest.raises(LayoutParseError) as info:
        load_layout(path)
    line, caret = info.value.details
    assert len(line) < 120 and line.startswith("  ...")
    assert line[caret.index("^") :].startswith("3, 4])]")


def test_a_byte_order_mark_and_utf16_are_read(tmp_path):
    text = "Objects: [('a cat', [1, 2, 3, 4])]\nBackground prompt: a park\n"
    (tmp_path / "bom.txt").write_bytes(text.encode("utf-8-sig"))
    (tmp_path / "utf16.txt").write_text(text, encoding="utf-16")  # PowerShell's `>`
    assert load_layout(tmp_path / "bom.txt").names == ["a cat"]
    assert load_layout(tmp_path / "utf16.txt").names == ["a cat"]


def test_a_problem_without_a_place_still_names_the_file(tmp_path):
    path = tmp_path / "empty.txt"
    path.write_text("hello\n")
    with pytest.raises(LayoutParseError, match=r"empty.txt' is not a layout: no 'Background"):
        load_layout(path)


@pytest.mark.parametrize(
    ("text", "message", "after"),
    [
        ('Objects: [("a cat" [10, 10, 100, 100])]\nBackground prompt: a park\n',
         "column 20: expected ',' after the string", "[10, 10"),
        ('{"boxes": [["a cat" [10,10,100,100]]], "background": "a park"}\n',
         "column 21: expecting ',' delimiter", "[10,10"),
    ],
)  # fmt: skip
def test_a_comma_missing_after_a_name_points_at_the_gap(tmp_path, text, message, after):
    """The forgiving reader takes a quote followed by no comma for an apostrophe, and JSON
    falls back to it: the caret goes where the comma is missing, not where reading gave up."""
    path = tmp_path / "layout.txt"
    path.write_text(text)
    with pytest.raises(LayoutParseError) as info:
        load_layout(path)
    assert str(info.value) == f"{str(path)!r} line 1, {message}"
    line, caret = info.value.details
    assert line[caret.index("^") :].startswith(after)
