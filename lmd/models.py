"""Turn a model name into ready stage-2 components: device, dtype and the diffusers pipeline.

A model is `random:tiny` / `random:sd15-tiny` / `random:sd15` / `random:sd2-tiny` /
`random:sdxl-tiny` / `random:sdxl` / `random:sd3-tiny` / `random:sd3` / `random:flux-tiny` /
`random:flux` (random weights, see `random_pipeline`), a hub id
(`owner/name`, from the local cache when offline) or a local diffusers pipeline folder (one
with `model_index.json`). Every failure to load becomes one `ModelLoadError` sentence that
names the model and says what to do; huggingface tracebacks never reach the user.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import torch

from lmd.controller.methods import get_method
from lmd.controller.methods.lmd_plus import GLIGEN_MODEL
from lmd.layouts.errors import LmdError, one_line
from lmd.random_pipeline import (
    RANDOM_MODELS,
    RANDOM_PREFIX,
    build_random_pipeline,
    random_config,
    random_family,
)

SD15_MODEL = "stable-diffusion-v1-5/stable-diffusion-v1-5"
REFINER_MODEL = "stabilityai/stable-diffusion-xl-refiner-1.0"
HUB_CHECK_TIMEOUT_S = 5.0
LIBRARY_LIMIT = 160
"""Characters of a library's own message quoted inside one of lmd's."""

_DTYPES = {
    "fp16": torch.float16,
    "float16": torch.float16,
    "half": torch.float16,
    "bf16": torch.bfloat16,
    "bfloat16": torch.bfloat16,
    "fp32": torch.float32,
    "float32": torch.float32,
    "float": torch.float32,
}

T = TypeVar("T")


class ModelLoadError(LmdError):
    """A model (pipeline, SAM, refiner) could not be loaded; the message names it and the fix."""


def default_diffusion_model(method: str = "lmd") -> str:
    """The published model for a method: its own (GLIGEN for `lmd+`), else SD 1.5."""
    return get_method(method).default_model or SD15_MODEL


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """`None`/`"auto"` -> cuda if available, else mps, else cpu; otherwise the named device."""
    if isinstance(device, torch.device):
        return device
    if device is None or device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(
            f"`device` must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps' but is {device!r}"
        ) from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"`device` is {device!r} but CUDA is not available on this machine")
    return resolved


def resolve_dtype(
    dtype: str | torch.dtype | None = None, device: str | torch.device | None = None
) -> torch.dtype:
    """`None`/`"auto"` -> fp16 on CUDA, fp32 on CPU and MPS; else fp16/bf16/fp32 by name."""
    if isinstance(dtype, torch.dtype):
        if dtype not in _DTYPES.values():
            raise ValueError(f"`dtype` must be a floating type (fp16, bf16, fp32) but is {dtype}")
        return dtype
    if dtype is None or dtype == "auto":
        return torch.float16 if resolve_device(device).type == "cuda" else torch.float32
    key = str(dtype).lower().removeprefix("torch.")
    if key not in _DTYPES:
        raise ValueError(
            f"`dtype` must be 'auto', 'fp16', 'bf16' or 'fp32' (or float16/bfloat16/float32) "
            f"but is {dtype!r}"
        )
    return _DTYPES[key]


def load_pipeline(
    model: str | None = None,
    *,
    method: str = "lmd",
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    seed: int = 0,
):
    """A diffusers text-to-image pipeline (SD 1.x, SD 2.x, SDXL, SD3 or FLUX.1; a GLIGEN-gated
    UNet for `lmd+`) with the scheduler its backbone samples with (UNets: DDIM from their own
    scheduler config; SD3, FLUX: their flow-matching scheduler), on `device`.

    `model` is a `random:` model (see `random_pipeline`), a hub id or a local diffusers
    folder; `None` means `default_diffusion_model(method)`. `seed` only matters for random models.
    Only the components stage 2 uses are kept (no safety checker). `lmd+` on SDXL, SD3 or
    FLUX fails before anything loads when the folder or random model says what it is.
    """
    spec = get_method(method)
    model = default_diffusion_model(method) if model is None else str(model)
    torch_device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, torch_device)
    gligen = spec.gated_unet
    check_model_fits(model, method)  # lmd+ without GLIGEN weights, known before loading

    if model.startswith(RANDOM_PREFIX):
        name = model.removeprefix(RANDOM_PREFIX)
        if name not in RANDOM_MODELS:
            choices = ", ".join(RANDOM_PREFIX + n for n in RANDOM_MODELS)
            raise ModelLoadError(f"unknown random model {model!r}; choose one of {choices}")
        pipe = build_random_pipeline(
            name, gligen=gligen, seed=seed, device=torch_device, dtype=torch_dtype
        )
    else:
        pipe = from_pretrained(
            lambda source, **kw: _load_diffusers(source, method=spec, model=model, **kw),
            model,
            **dtype_kwarg(torch_dtype),
        )
        pipe = _move(pipe, model, torch_device)  # the dtype was applied while loading

    _prepare(pipe)
    if spec.grounded:
        check_guidable(pipe, model, spec)
    pipe.set_progress_bar_config(disable=True)
    return pipe


FAMILY_LABELS = {"sd1": "SD 1.x", "sd2": "SD 2.x", "sdxl": "SDXL", "sd3": "SD3", "flux": "FLUX.1"}
GLIGEN_FAMILIES = ("sd1", "sd2")
"""The families a GLIGEN-gated UNet can be (public weights exist for SD 1.x only)."""


def _prepare(pipe: Any) -> None:
    """The scheduler the pipeline's backbone samples with (SD 1.x/2.x/SDXL: DDIM from the
    pipeline's config; SD3, FLUX: their own flow-matching scheduler). A pipeline no backbone
    knows gets DDIM; the controller refuses it with a clear message."""
    from lmd.controller.backbones import family_of

    try:
        family_of(pipe).prepare()
    except ValueError:
        from diffusers import DDIMScheduler

        pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)


def check_model_fits(model: str, method: str) -> None:
    """Raise when `method` surely cannot run on `model`, known without loading it (a random
    model, a folder or a cached hub id): `lmd+` on SDXL, SD3 or FLUX (no GLIGEN weights), and a
    method whose weights exist for some families only (MIGC: SD 1.x)."""
    found = get_method(method)
    family = known_family(model)
    if family is None:
        return
    if found.gated_unet and family not in GLIGEN_FAMILIES:
        raise ModelLoadError(no_gligen(model, method, FAMILY_LABELS[family]))
    found.check_family(family, FAMILY_LABELS[family])


FAMILY_SIZE_MULTIPLE = {"sd3": 16, "flux": 16}
"""Pixels an image side must be a multiple of, where it is more than the VAE's 8: the
transformers cut the latent grid into 2x2 patches."""


def check_size_fits(model: str, height: int | None, width: int | None) -> None:
    """Raise when the image size surely cannot be drawn by `model`, known without loading it
    (SD3 and FLUX take multiples of 16); the loaded backbone checks any other model."""
    family = known_family(model)
    multiple = FAMILY_SIZE_MULTIPLE.get(family or "")
    sides = {"height": height, "width": width}
    wrong = {k: v for k, v in sides.items() if v is not None and v % (multiple or 1)}
    if multiple and wrong:
        name, value = next(iter(wrong.items()))
        raise ValueError(
            f"`{name}` must be a multiple of {multiple} on {FAMILY_LABELS[family]} (8-pixel "
            f"latent cells in 2x2 patches) but is {value}"
        )


def default_steps(model: str) -> int | None:
    """The steps `model` draws with when none are given, as its own pipeline's default: SD3
    and FLUX.1 [dev] 28, FLUX.1 [schnell] (no guidance embedding: timestep-distilled) 4; None
    (`LMDConfig`'s 50) for the UNets and where the files cannot be read here."""
    family = known_family(model)
    if family == "sd3":
        return 28
    if family != "flux":
        return None
    if model.startswith(RANDOM_PREFIX):
        config = random_config(model.removeprefix(RANDOM_PREFIX))["transformer"]
    else:
        file = _model_file(model, "transformer/config.json")
        try:
            config = json.loads(file.read_text()) if file is not None else {}
        except (OSError, ValueError):
            config = {}
    return 28 if config.get("guidance_embeds", True) else 4


def known_family(model: str) -> str | None:
    """The family (`sd1`, `sd2`, `sdxl`, `sd3`, `flux`) of `model` as its files say without
    loading it, or None when that cannot be read here (a hub id not in the cache)."""
    if model.startswith(RANDOM_PREFIX):
        name = model.removeprefix(RANDOM_PREFIX)
        return random_family(name) if name in RANDOM_MODELS else None
    index, unet = _model_file(model, "model_index.json"), _model_file(model, "unet/config.json")
    try:
        family = index_family(json.loads(index.read_text())) if index is not None else None
        if family is not None:
            return family
        if unet is not None:
            width = json.loads(unet.read_text()).get("cross_attention_dim")
            return {768: "sd1", 1024: "sd2"}.get(width)
    except (OSError, ValueError):
        pass
    return None


def index_family(index: dict) -> str | None:
    """The family a pipeline's `model_index.json` alone tells (`sdxl`, `sd3`, `flux`), else
    None (an SD 1.x or 2.x UNet: its config tells which)."""
    name = str(index.get("_class_name", ""))
    if "transformer" in index:
        if "StableDiffusion3" in name or "text_encoder_3" in index:
            return "sd3"
        return "flux" if "Flux" in name else None
    return "sdxl" if "text_encoder_2" in index else None


def _model_file(model: str, file: str) -> Path | None:
    """`file` of a local folder or of a hub id in the cache, else None (no network)."""
    if looks_local(model):
        path = Path(model).expanduser() / file
        return path if path.is_file() else None
    from huggingface_hub import try_to_load_from_cache

    try:
        cached = try_to_load_from_cache(model, file)
    except Exception:  # not a valid hub id: the load reports it
        return None
    return Path(cached) if isinstance(cached, str) else None


def no_gligen(model: str, method: str, family: str = "SDXL") -> str:
    return (
        f"model {model!r} is {family}, and `method='{method}'` needs GLIGEN weights, which exist "
        f"publicly for SD 1.x only; use `method='lmd'` on {family}"
    )


def _load_diffusers(source: str, *, method, model: str, **kwargs: Any):
    """Load a pipeline folder or hub id through the class its `model_index.json` names.

    GLIGEN folders name the deprecated `StableDiffusionGLIGENPipeline`; their components are
    a Stable Diffusion pipeline's with a gated UNet, so they load as `StableDiffusionPipeline`.
    """
    from diffusers import DiffusionPipeline, StableDiffusionPipeline

    index = DiffusionPipeline.load_config(source)
    names = set(index)
    family = index_family(index)
    if method.gated_unet and (family is not None or "transformer" in index):
        label = FAMILY_LABELS.get(family, "a transformer model")
        raise ModelLoadError(no_gligen(model, method.name, label))
    if "safety_checker" in names:  # stage 2 never runs it
        kwargs.update(safety_checker=None, requires_safety_checker=False)
    for unused in ("feature_extractor", "image_encoder"):
        if unused in names:
            kwargs[unused] = None
    if index.get("_class_name") == "StableDiffusionGLIGENPipeline":
        return StableDiffusionPipeline.from_pretrained(source, **kwargs)
    return DiffusionPipeline.from_pretrained(source, **kwargs)


def check_guidable(pipe: Any, model: str, method) -> None:
    """Raise `ModelLoadError` unless `method` can draw on `pipe` (the backbone has the layers a
    grounded method reads, and GLIGEN's gated layers where the method needs them)."""
    from lmd.controller.backbones import family_of

    try:
        backbone = family_of(pipe)
        backbone.layers  # noqa: B018 (finding them is the check)
    except ValueError as exc:
        raise ModelLoadError(
            f"model {model!r} cannot be guided ({exc}); use an SD 1.x/2.x/SDXL, SD3 or FLUX.1 "
            "model (or `method='sd'`)"
        ) from exc
    if method.gated_unet and not backbone.has_gligen():
        raise ModelLoadError(
            f"model {model!r} has no GLIGEN gated attention, which `method='{method.name}'` "
            f"needs; use {GLIGEN_MODEL!r} (or another GLIGEN model) or `method='lmd'`"
        )


def check_source(
    model: str,
    *,
    what: str = "model",
    kind: str = "diffusers",
    argument: str = "model",
    required_file: str | None = "model_index.json",
    ask_hub: bool = True,
) -> None:
    """Raise `ModelLoadError` if `model` (a hub id or local folder) surely cannot load.

    Checks what is cheap before any weights are read: a local folder exists and holds
    `required_file`; a hub id is in the local cache or, online, the hub has it (`ask_hub`;
    a hub that cannot be reached is left for the load itself to report). Arguments as in
    `from_pretrained`.
    """
    if model.startswith(RANDOM_PREFIX) and kind == "diffusers":
        if model.removeprefix(RANDOM_PREFIX) not in RANDOM_MODELS:
            choices = ", ".join(RANDOM_PREFIX + n for n in RANDOM_MODELS)
            raise ModelLoadError(f"unknown random model {model!r}; choose one of {choices}")
        return
    hint = f"pass a local {kind} folder as `{argument}`"
    if looks_local(model):
        path = Path(model).expanduser()
        _check_local_folder(model, path, required_file, what=what, kind=kind, hint=hint)
        return
    if _cached(model, required_file):
        return
    if _offline():
        raise ModelLoadError(
            f"{what} {model!r} is not in the local cache and the hub cannot be reached "
            f"(HF_HUB_OFFLINE is set); {hint}"
        )
    if ask_hub and required_file:
        found = hub_has(model, required_file)
        if found is False:
            raise ModelLoadError(
                f"{what} {model!r} was not found on the hub; check the id or {hint}"
            )
        if isinstance(found, str):  # why the hub could not be asked
            raise ModelLoadError(unreachable(what, model, found, hint))


def from_pretrained(
    load: Callable[..., T],
    model: str,
    *,
    what: str = "model",
    kind: str = "diffusers",
    argument: str = "model",
    required_file: str | None = "model_index.json",
    **kwargs: Any,
) -> T:
    """Call a `from_pretrained` for a hub id or local folder, turning failures into one line.

    `what` names the thing in messages ("model", "SAM model"), `kind` the folder format,
    `argument` the Python argument that takes a local folder (the CLI shows its flag);
    `required_file` marks a valid folder.
    """
    hint = f"pass a local {kind} folder as `{argument}`"
    names = dict(what=what, kind=kind, argument=argument, required_file=required_file)
    check_source(model, **names, ask_hub=False)
    if looks_local(model):
        try:
            return load(str(Path(model).expanduser()), **kwargs)
        except ModelLoadError:
            raise
        except Exception as exc:
            raise ModelLoadError(
                f"could not load {what} folder {model!r}: {one_line(exc, LIBRARY_LIMIT)}; check "
                "that it was written by save_pretrained and is complete"
            ) from exc
    try:
        return load(model, **kwargs)
    except ModelLoadError:
        raise
    except Exception as exc:
        raise _hub_error(model, exc, what=what, hint=hint) from exc


DTYPE_KEYWORD_SINCE = "0.40.0"
"""diffusers' `from_pretrained` takes `dtype` from 0.40.0 on (`torch_dtype` is deprecated)."""


def dtype_kwarg(dtype: torch.dtype) -> dict[str, torch.dtype]:
    """`from_pretrained`'s dtype keyword: `dtype` in new diffusers, `torch_dtype` in old."""
    from importlib.metadata import version

    from packaging.version import Version

    new = Version(version("diffusers")) >= Version(DTYPE_KEYWORD_SINCE)
    return {"dtype": dtype} if new else {"torch_dtype": dtype}


def looks_local(model: str) -> bool:
    """A path that exists, or one that cannot be a hub id (`owner/name` or `name`)."""
    if os.path.exists(os.path.expanduser(model)):
        return True
    return (
        model.startswith(("/", "./", "../", "~", "\\"))
        or model.count("/") > 1
        or (os.sep != "/" and os.sep in model)
    )


def _check_local_folder(
    model: str, path: Path, required_file: str | None, *, what: str, kind: str, hint: str
) -> None:
    if not path.exists():
        raise ModelLoadError(f"{what} folder {model!r} does not exist; {hint} or a hub id")
    if not path.is_dir():
        raise ModelLoadError(
            f"{what} {model!r} is a file, not a {kind} folder; single-file checkpoints are not "
            "supported here, convert it with save_pretrained first"
        )
    if required_file and not (path / required_file).is_file():
        raise ModelLoadError(
            f"{what} folder {model!r} is not a {kind} folder (no {required_file}); save one "
            "with save_pretrained or pass a hub id"
        )


def is_cached(model: str, required_file: str = "model_index.json") -> bool:
    """Whether loading `model` reads no weights from the hub: random, local, or in the cache."""
    if model.startswith(RANDOM_PREFIX) or looks_local(model):
        return True
    return _cached(model, required_file)


def _offline() -> bool:
    from huggingface_hub import constants

    env = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}
    return env or bool(constants.HF_HUB_OFFLINE)


def _cached(repo_id: str, filename: str | None) -> bool:
    if filename is None:
        return True
    from huggingface_hub import try_to_load_from_cache

    try:
        return isinstance(try_to_load_from_cache(repo_id, filename), str)
    except Exception:  # an invalid repo id: let the load itself report it
        return True


def hub_timeout() -> float:
    """Seconds the hub has to answer whether it has a file: `$HF_HUB_ETAG_TIMEOUT` (the hub's
    own setting for such requests) when set, else `HUB_CHECK_TIMEOUT_S`."""
    try:
        return float(os.environ["HF_HUB_ETAG_TIMEOUT"])
    except (KeyError, ValueError):
        return HUB_CHECK_TIMEOUT_S


def hub_has(repo_id: str, filename: str) -> bool | str | None:
    """Whether the hub has `filename` in `repo_id`: True, False (no such file or repo), why it
    could not be reached (a string: refused, no answer in `hub_timeout()` s, ...), or None
    when it answered something else (a gated repo, a proxy page: the load will say)."""
    from huggingface_hub import constants, get_hf_file_metadata, hf_hub_url
    from huggingface_hub.errors import (
        EntryNotFoundError,
        HFValidationError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    limit = hub_timeout()
    try:
        url = hf_hub_url(repo_id, filename, endpoint=constants.ENDPOINT)
    except HFValidationError:
        raise ModelLoadError(
            f"{repo_id!r} is neither an existing local folder nor a valid hub id (owner/name)"
        ) from None
    answer: list = []

    def ask() -> None:
        try:
            get_hf_file_metadata(url, timeout=limit)
            answer.append(True)
        except BaseException as exc:  # kept for the caller's thread
            answer.append(exc)

    # The hub client retries some failures: a thread bounds the whole question in time.
    asking = threading.Thread(target=ask, name="lmd-hub-check", daemon=True)
    asking.start()
    asking.join(limit + 1.0)
    if not answer:
        return f"no answer within {limit:g} s"
    exc = answer[0]
    if exc is True:
        return True
    if isinstance(exc, RepositoryNotFoundError | EntryNotFoundError | RevisionNotFoundError):
        return False
    if isinstance(exc, HFValidationError):
        raise ModelLoadError(
            f"{repo_id!r} is neither an existing local folder nor a valid hub id (owner/name)"
        ) from None
    return _transport_problem(exc)


_TRANSPORT = {
    "TransportError", "ConnectionError", "Timeout", "TimeoutException", "ProxyError", "gaierror",
}  # fmt: skip
"""Class names (httpx's, requests' and Python's own) of failures to reach a server at all."""


def _transport_problem(exc: BaseException) -> str | None:
    """Why `exc` (or what caused it) means the server could not be reached, else None."""
    seen: BaseException | None = exc
    while seen is not None:
        names = {cls.__name__ for cls in type(seen).__mro__}
        if names & _TRANSPORT or isinstance(seen, TimeoutError):
            if isinstance(seen, TimeoutError) or any("Timeout" in n for n in names):
                return "no answer in time"
            text = re.sub(r"^\[Errno -?\d+\] ", "", one_line(seen, 100))
            if "refused" in text.lower():
                return "connection refused"
            return text or type(seen).__name__
        seen = seen.__cause__ or seen.__context__
    return None


def unreachable(what: str, model: str, why: str, hint: str) -> str:
    """The one line for a model that is not cached while the hub cannot be reached."""
    from huggingface_hub import constants

    return (
        f"{what} {model!r} is not in the local cache and the hub at {constants.ENDPOINT} cannot "
        f"be reached ({why}); download it once where the hub can be reached, or {hint} "
        f"(HF_HUB_OFFLINE=1 skips asking the hub; HF_HUB_ETAG_TIMEOUT waits longer)"
    )


def _hub_error(model: str, exc: Exception, *, what: str, hint: str) -> ModelLoadError:
    from huggingface_hub.errors import (
        GatedRepoError,
        HFValidationError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
    )

    if isinstance(exc, GatedRepoError):
        why = "is gated on the hub; accept its licence and log in with `hf auth login`"
    elif isinstance(exc, RepositoryNotFoundError):
        why = f"was not found on the hub; check the id or {hint}"
    elif isinstance(exc, HFValidationError):
        why = "is neither an existing local folder nor a valid hub id (owner/name)"
    elif isinstance(exc, LocalEntryNotFoundError) or "cached" in str(exc):
        why = f"is not in the local cache and the hub cannot be reached; {hint}"
    elif (problem := _transport_problem(exc)) is not None:
        return ModelLoadError(unreachable(what, model, problem, hint))
    else:
        why = f"could not be loaded ({one_line(exc, LIBRARY_LIMIT)}); check the id or {hint}"
    return ModelLoadError(f"{what} {model!r} {why}")


def _move(pipe: Any, model: str, device: torch.device) -> Any:
    try:
        return pipe.to(device)
    except RuntimeError as exc:
        raise ModelLoadError(
            f"model {model!r} could not be moved to {device}: {one_line(exc, LIBRARY_LIMIT)}; "
            "try `dtype='fp16'` or `device='cpu'`"
        ) from exc
