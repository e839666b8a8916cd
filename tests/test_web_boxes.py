"""The box editor of `lmd web` (`lmd.web.boxes`): the layout drawn on the picture for it, and
its boxes read back into the table, keeping every number a person did not change. No gradio."""

from __future__ import annotations

from PIL import Image

from lmd.web.boxes import BLANK, canvas, editor_value, rows_after_drawing

ROWS = [["a grey cat", 40.5, 260, 160, 160.25], ["a brown dog", 280, 240, 180, 200]]


def drawn(*boxes):
    """Editor boxes as the component hands them back (whole pixels, its own colours)."""
    return [
        {"label": name, "xmin": x0, "ymin": y0, "xmax": x1, "ymax": y1, "color": (1, 2, 3)}
        for name, x0, y0, x1, y1 in boxes
    ]


CAT = ("a grey cat", 40, 260, 200, 420)  # 40.5 + 160 rounds to 200; 260 + 160.25 to 420
DOG = ("a brown dog", 280, 240, 460, 440)


def test_the_editor_shows_each_row_that_is_a_box_in_the_colour_the_picture_uses():
    rows = [*ROWS, ["", None, None, None, None], ["half typed", 10, "", 5, 5], ["flat", 0, 0, 0, 9]]
    value = editor_value(rows, "picture.png")
    assert value["image"] == "picture.png"
    assert [(b["label"], b["xmin"], b["ymin"], b["xmax"], b["ymax"]) for b in value["boxes"]] == [
        CAT, DOG,
    ]  # fmt: skip
    assert [b["color"] for b in value["boxes"]] == [(230, 25, 75), (60, 180, 75)]


def test_boxes_handed_back_unchanged_change_nothing_even_in_another_order():
    assert rows_after_drawing(ROWS, drawn(CAT, DOG)) is None
    assert rows_after_drawing(ROWS, drawn(DOG, CAT)) is None


def test_a_dragged_box_moves_its_row_only_and_the_other_keeps_its_exact_numbers():
    rows = rows_after_drawing(ROWS, drawn(CAT, ("a brown dog", 200, 40, 380, 240)))
    assert rows == [ROWS[0], ["a brown dog", 200, 40, 180, 200]]


def test_a_resized_box_changes_its_size():
    rows = rows_after_drawing(ROWS, drawn(("a grey cat", 40, 260, 300, 500), DOG))
    assert rows == [["a grey cat", 40, 260, 260, 240], ROWS[1]]


def test_a_deleted_box_deletes_its_row():
    assert rows_after_drawing(ROWS, drawn(DOG)) == [ROWS[1]]
    assert rows_after_drawing(ROWS, []) == []


def test_new_boxes_are_added_at_the_end_in_the_order_they_were_drawn():
    # The editor puts each new box first.
    new = drawn(("a hat", 5, 6, 25, 36), ("a ball", 300, 400, 350, 450), CAT, DOG)
    rows = rows_after_drawing(ROWS, new)
    assert rows == [*ROWS, ["a ball", 300, 400, 50, 50], ["a hat", 5, 6, 20, 30]]


def test_a_renamed_box_keeps_its_place_and_exact_numbers():
    rows = rows_after_drawing(ROWS, drawn(("a black cat", *CAT[1:]), DOG))
    assert rows == [["a black cat", 40.5, 260, 160, 160.25], ROWS[1]]


def test_a_box_drawn_without_a_name_is_a_row_to_name():
    rows = rows_after_drawing(ROWS, drawn(("", 10, 10, 60, 60), CAT, DOG))
    assert rows == [*ROWS, ["", 10, 10, 50, 50]]


def test_rows_that_are_no_box_yet_stay_where_they_are_and_blank_ones_go():
    rows = [ROWS[0], ["half typed", 10, "", 5, 5], ["", None, float("nan"), "", None], ROWS[1]]
    after = rows_after_drawing(rows, drawn(CAT, ("a brown dog", 0, 0, 180, 200)))
    assert after == [ROWS[0], ["half typed", 10, "", 5, 5], ["a brown dog", 0, 0, 180, 200]]


def test_two_boxes_of_one_name_each_keep_their_own_row():
    rows = [["a cat", 0, 0, 10, 10], ["a cat", 100, 100, 10, 10]]
    after = rows_after_drawing(rows, drawn(("a cat", 0, 0, 10, 10), ("a cat", 150, 100, 160, 110)))
    assert after == [["a cat", 0, 0, 10, 10], ["a cat", 150, 100, 10, 10]]
    both_moved = drawn(("a cat", 5, 0, 15, 10), ("a cat", 150, 100, 160, 110))
    assert rows_after_drawing(rows, both_moved) == [
        ["a cat", 5, 0, 10, 10], ["a cat", 150, 100, 10, 10],
    ]  # fmt: skip


def test_the_canvas_is_the_picture_at_the_layouts_size_or_blank():
    picture = Image.new("RGB", (128, 96), (10, 20, 30))
    shown = canvas(picture, 640, 480)
    assert shown.size == (640, 480) and shown.getpixel((320, 240)) == (10, 20, 30)
    blank = canvas(None, 512, 384)
    assert blank.size == (512, 384) and blank.getpixel((0, 0)) == BLANK


def test_a_box_still_being_drawn_is_not_read():
    assert rows_after_drawing(ROWS, drawn(("", 300, 100, 300, 100), CAT, DOG)) is None
