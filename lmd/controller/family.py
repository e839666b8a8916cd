"""`family_of(pipe)`: a loaded pipeline's model family (SD 1.x, SD 2.x, SDXL), as the
`Backbone` that draws with it (see `lmd.controller.backbones`)."""

from lmd.controller.backbones import family_of

__all__ = ["family_of"]
