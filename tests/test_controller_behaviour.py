"""What a correct LMD does, observed through the trace on the tiny model: objects land in
their boxes, an object's seed is its own, masks come from the attention or SAM (else the
box), the overall generation starts from the composed objects."""

import torch
from lmd.layouts.model import Box, Layout

from lmd.controller import Controller, LMDConfig
from lmd.controller.masks import centre_of_mass, coarse_masks, resize_masks, shift_unit
from lmd.controller.noise import centred, to_cells
from lmd.controller.trace import TraceRecorder

LAYOUT = Layout(
    boxes=[Box(name="a gray cat", x=20, y=240, w=200, h=220),
           Box(name="a dog", x=300, y=60, w=180, h=200)],
    background="a grassy park",
)  # fmt: skip


class EmptySam:
    """A segmenter that finds nothing: every mask falls back to the drawn box."""

    def __init__(self):
        self.calls = 0

    def segment(self, images, *, points=None, boxes=None):
        self.calls += 1
        w, h = images[0].size
        return torch.zeros(len(images), 3, h, w, dtype=torch.bool), torch.ones(len(images), 3)


def traced(pipe, layout=LAYOUT, segmenter=None, **render):
    recorder = TraceRecorder()
    controller = Controller(pipe, LMDConfig(steps=3), segmenter=segmenter)
    result = controller.render(layout, trace=recorder, **render)
    return result, recorder


def test_each_object_lands_in_its_box(tiny_pipe):
    result, trace = traced(tiny_pipe, seed=2, segmenter=EmptySam())  # box-shaped masks
    unit = shift_unit(16, 4, 8)  # 4 latent cells at 128 px
    for i, box in enumerate(result.layout.boxes):
        drawn, placed = trace.last(f"box{i}.mask"), trace.last(f"box{i}.placed_mask")
        assert torch.equal(placed, result.masks[i])
        assert drawn.sum() == placed.sum(), "this layout never pushes a mask off the canvas"
        (mx, my), (cx, cy) = centre_of_mass(placed), box.center
        # The mask's centre is moved onto the box's centre, to within half a grid step.
        assert abs(mx + 0.5 - cx * 16 / 128) <= unit / 2
        assert abs(my + 0.5 - cy * 16 / 128) <= unit / 2
        # The object was drawn centred, its bottom at 0.8 of the height: the latents drawn
        # there are the ones moved into the box.
        dx, dy = trace.last(f"box{i}.shift").tolist()
        assert torch.equal(torch.roll(drawn, (dy, dx), (-2, -1)), placed)


def test_one_objects_seed_changes_only_that_object(tiny_pipe):
    _, a = traced(tiny_pipe, seed=4, object_seeds=[7, 8])
    result_b, b = traced(tiny_pipe, seed=4, object_seeds=[7, 9])
    assert torch.equal(a.stacked("box0.latents"), b.stacked("box0.latents"))
    assert torch.equal(a.last("box0.mask"), b.last("box0.mask"))
    assert not torch.allclose(a.stacked("box1.latents"), b.stacked("box1.latents"))
    assert result_b.object_seeds == [7, 9]
    # The starting noise differs inside the dog's box only.
    n0, n1 = a.last("box1.initial_latents"), b.last("box1.initial_latents")
    cells = centred(to_cells(result_b.layout.boxes[1].xyxy, (128, 128), (16, 16)), (16, 16), 0.8)
    inside = cells.mask(16, 16)
    assert torch.equal(n0[:, ~inside], n1[:, ~inside]) and not torch.equal(n0, n1)
    assert not torch.equal(a.last("final_latents"), b.last("final_latents"))


def test_composition_puts_each_object_in_its_mask_in_every_frame(tiny_pipe):
    result, trace = traced(tiny_pipe, seed=1)
    composed = trace.last("composed")
    assert len(composed) == 3 + 1
    for i in range(2):
        dx, dy = trace.last(f"box{i}.shift").tolist()
        frames = torch.cat([trace.last(f"box{i}.initial_latents")[None],
                            trace.stacked(f"box{i}.latents")])  # fmt: skip
        frames = torch.roll(frames, (dy, dx), (-2, -1))
        own = result.masks[i] & ~result.masks[1 - i]
        assert own.any()
        assert torch.equal(composed[:, :, own], frames[:, :, own])
    # Outside every object, frame 0 is the background noise the overall generation starts from.
    outside = ~(result.masks[0] | result.masks[1])
    background = torch.randn((4, 16, 16), generator=torch.Generator().manual_seed(1))
    grown = torch.zeros(16, 16, dtype=torch.bool)
    for m in result.masks:
        ys, xs = torch.nonzero(m, as_tuple=True)
        grown[max(int(ys.min()) - 1, 0) : int(ys.max()) + 2,
              max(int(xs.min()) - 1, 0) : int(xs.max()) + 2] = True  # fmt: skip
    assert torch.equal(composed[0][:, outside & ~grown], background[:, outside & ~grown])


def test_the_coarse_mask_is_the_attention_blob_and_its_peak():
    attn = torch.zeros(1, 8, 8)
    attn[0, 2:5, 4:7] = 1.0  # the object's token attends here
    attn[0, 3, 5] = 2.0
    mask, peaks = coarse_masks(attn, sigma=0.5, threshold=0.25)
    assert peaks == [(3, 5)]
    assert mask[0, 3, 5] and mask[0, 2:5, 4:7].all()
    assert not mask[0, :, :2].any() and not mask[0, 6:].any()  # far from the blob: outside


def test_empty_sam_masks_fall_back_to_exactly_the_box(tiny_pipe):
    sam = EmptySam()
    result, trace = traced(tiny_pipe, segmenter=sam)
    assert sam.calls == 1  # all boxes in one call
    for i, box in enumerate(result.layout.boxes):
        drawn = centred(to_cells(box.xyxy, (128, 128), (16, 16)), (16, 16), 0.8)
        assert torch.equal(trace.last(f"box{i}.mask"), drawn.mask(16, 16))


def test_the_tiny_sam_masks_are_used(tiny_pipe, tiny_sam):
    answers = []

    class Spy:
        def segment(self, images, **prompts):
            masks, scores = tiny_sam.segment(images, **prompts)
            answers.append(masks)
            return masks, scores

    result, trace = traced(tiny_pipe, segmenter=Spy())
    (masks,) = answers
    for i, box in enumerate(result.layout.boxes):
        mask = trace.last(f"box{i}.mask")
        candidates = list(resize_masks(masks[i].cpu(), (16, 16)))
        drawn = centred(to_cells(box.xyxy, (128, 128), (16, 16)), (16, 16), 0.8)
        if not any(c.any() for c in candidates):
            candidates = [drawn.mask(16, 16)]
        assert any(torch.equal(mask, c) for c in candidates)
