"""open_clip models: where their weights come from, loading them once, encoding.

Weights are one of: a pretrained tag (downloaded by open_clip into its cache on a machine
that can reach the Hugging Face hub), a local checkpoint file, or ``random``. Random
weights are seeded, so every process (web, worker, CLI) builds the same network and the
vectors they compute agree; similarity under them is not semantic, and everything that
uses them says so (a warning in the log, ``random_weights`` in the API).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
from django.conf import settings
from rest_framework import status

from curation.errors import CurationError, InvalidInput, field_error

logger = logging.getLogger(__name__)

RANDOM = "random"
RANDOM_SEED = 0
_HUB_PROBE_SECONDS = 3.0
_HUB_PROBE_TTL = 300.0
_WEIGHT_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".ckpt")


class WeightsUnavailable(CurationError):
    """The configured weights are not on this machine and cannot be downloaded."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    code = "weights_unavailable"


@dataclass(frozen=True)
class ModelSpec:
    """An open_clip architecture and where its weights come from."""

    architecture: str
    weights: str

    @property
    def is_random(self) -> bool:
        return self.weights == RANDOM

    @property
    def is_file(self) -> bool:
        # Pretrained tags are plain words; anything that looks like a path is a file.
        return not self.is_random and (
            "/" in self.weights or os.sep in self.weights or self.weights.endswith(_WEIGHT_SUFFIXES)
        )

    @property
    def name(self) -> str:
        """The model's name in the database, e.g. ViT-B-32/laion2b_s34b_b79k."""
        label = f"file:{Path(self.weights).name}" if self.is_file else self.weights
        return f"{self.architecture}/{label}"[:200]


def configured_spec() -> ModelSpec:
    """The model that settings ask for (NUCLEUS_EMBEDDING_ARCH / _WEIGHTS)."""
    return ModelSpec(settings.NUCLEUS_EMBEDDING_ARCH, settings.NUCLEUS_EMBEDDING_WEIGHTS.strip())


def unavailable_message(spec: ModelSpec) -> str:
    """Say why weights are missing and name both ways to provide them."""
    if spec.is_file:
        why = f"the checkpoint file {spec.weights!r} does not exist on this machine"
    else:
        why = (
            f"the pretrained weights {spec.weights!r} of {spec.architecture} are not in "
            "open_clip's cache on this machine and the Hugging Face hub cannot be reached"
        )
    return (
        f"Embedding weights unavailable: {why}. Provide them in one of two ways: "
        "(1) a pretrained tag (NUCLEUS_EMBEDDING_WEIGHTS=laion2b_s34b_b79k, the default), "
        "downloaded once by a machine that can reach the hub, or copied into the cache that "
        "HF_HOME or NUCLEUS_EMBEDDING_CACHE_DIR points at; or (2) a local open_clip "
        "checkpoint: NUCLEUS_EMBEDDING_WEIGHTS=/path/to/checkpoint.pt. For an offline demo, "
        "NUCLEUS_EMBEDDING_WEIGHTS=random (or NUCLEUS_EMBEDDING_RANDOM_FALLBACK=1) uses "
        "random weights, with which similarity is not semantic."
    )


def model_dimension(architecture: str) -> int:
    """The embedding size of an open_clip architecture, read from its config."""
    import open_clip

    config = open_clip.get_model_config(architecture)
    if config is None:
        raise InvalidInput(
            f"Unknown open_clip architecture {architecture!r}.",
            fields=[field_error("architecture", "is not an open_clip model name")],
        )
    return int(config["embed_dim"])


def _pretrained_cfg(spec: ModelSpec) -> dict[str, Any]:
    import open_clip

    cfg = open_clip.get_pretrained_cfg(spec.architecture, spec.weights)
    if not cfg:
        tags = open_clip.list_pretrained_tags_by_model(spec.architecture)
        raise InvalidInput(
            f"{spec.weights!r} is neither a file nor a pretrained tag of {spec.architecture} "
            f"(known tags: {', '.join(tags) or 'none'}).",
            fields=[field_error("weights", "is not a file or a known pretrained tag")],
        )
    return dict(cfg)


def weights_local_path(spec: ModelSpec) -> str | None:
    """The weights file if it is on this machine already (no network involved)."""
    if spec.is_random:
        return None
    if spec.is_file:
        return spec.weights if Path(spec.weights).is_file() else None
    cfg = _pretrained_cfg(spec)
    cache_dir = settings.NUCLEUS_EMBEDDING_CACHE_DIR
    if cfg.get("file"):
        return str(cfg["file"]) if Path(cfg["file"]).is_file() else None
    if cfg.get("hf_hub"):
        from huggingface_hub import try_to_load_from_cache
        from open_clip.constants import HF_WEIGHTS_NAME
        from open_clip.pretrained import _get_safe_alternatives

        # "org/repo/" names the default file, "org/repo/file.bin" a given one.
        repo_id, filename = os.path.split(cfg["hf_hub"])
        filename = filename or HF_WEIGHTS_NAME
        names = [*_get_safe_alternatives(filename), filename]
        for name in names:
            found = try_to_load_from_cache(repo_id=repo_id, filename=name, cache_dir=cache_dir)
            if isinstance(found, str) and Path(found).is_file():
                return found
        return None
    if cfg.get("url"):
        path = Path(cache_dir or Path.home() / ".cache" / "clip") / os.path.basename(cfg["url"])
        return str(path) if path.is_file() else None
    return None


_probe_lock = threading.Lock()
_probe: tuple[float, bool] | None = None


def hub_reachable() -> bool:
    """Whether the Hugging Face hub answers a TCP connection (cached for a few minutes).

    huggingface_hub retries a failed download for about a minute; probing first lets an
    offline machine fail (or fall back) at once instead.
    """
    global _probe
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        return False
    with _probe_lock:
        if _probe and time.monotonic() - _probe[0] < _HUB_PROBE_TTL:
            return _probe[1]
        host = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co").hostname
        try:
            socket.create_connection(
                (host or "huggingface.co", 443), timeout=_HUB_PROBE_SECONDS
            ).close()
            ok = True
        except OSError:
            ok = False
        _probe = (time.monotonic(), ok)
        return ok


def spec_resolve(spec: ModelSpec, *, fallback: bool | None = None) -> ModelSpec:
    """The spec to embed with: `spec` if its weights can be had, else random or an error.

    Weights "can be had" when they are on this machine or the hub is reachable (the job
    then downloads them). Otherwise, with the random fallback on, a loud warning and the
    same architecture with random weights; with it off, WeightsUnavailable.
    """
    if fallback is None:
        fallback = settings.NUCLEUS_EMBEDDING_RANDOM_FALLBACK
    model_dimension(spec.architecture)  # unknown architectures are refused either way
    if spec.is_random:
        return spec
    if spec.is_file:
        if Path(spec.weights).is_file():
            return spec
    elif weights_local_path(spec) or hub_reachable():
        return spec
    if fallback:
        logger.warning(
            "%s NUCLEUS_EMBEDDING_RANDOM_FALLBACK is on: using RANDOM weights for %s. "
            "Similarity search will NOT be semantic.",
            unavailable_message(spec),
            spec.architecture,
        )
        return ModelSpec(spec.architecture, RANDOM)
    raise WeightsUnavailable(unavailable_message(spec))


def device_choose() -> str:
    """The torch device: NUCLEUS_EMBEDDING_DEVICE, or the GPU when torch sees one."""
    import torch

    wanted = settings.NUCLEUS_EMBEDDING_DEVICE.strip().lower()
    if wanted and wanted != "auto":
        return wanted
    return "cuda" if torch.cuda.is_available() else "cpu"


class Encoder:
    """A loaded open_clip model that turns images and texts into unit vectors."""

    def __init__(self, spec: ModelSpec, model: Any, tokenizer: Any, device: str) -> None:
        self.spec = spec
        self.model = model
        self.tokenizer = tokenizer
        self.device = device
        cfg = getattr(model.visual, "preprocess_cfg", {}) or {}
        size = cfg.get("size", model.visual.image_size)
        self.image_size = int(size[0] if isinstance(size, tuple | list) else size)
        self.mean = tuple(float(v) for v in cfg.get("mean", (0.48145466, 0.4578275, 0.40821073)))
        self.std = tuple(float(v) for v in cfg.get("std", (0.26862954, 0.26130258, 0.27577711)))
        self.dimension = model_dimension(spec.architecture)
        import torch

        self._mean = torch.tensor(self.mean, device=device).view(1, 3, 1, 1) * 255.0
        self._std = torch.tensor(self.std, device=device).view(1, 3, 1, 1) * 255.0
        self.lock = threading.Lock()

    def _precision(self) -> Any:
        """fp16 on a GPU (about twice the throughput); CPUs have no fast fp16: fp32 there."""
        import torch

        if self.device.startswith("cuda"):
            return torch.autocast("cuda", dtype=torch.float16)
        return contextlib.nullcontext()

    @property
    def is_random(self) -> bool:
        return self.spec.is_random

    def encode_pixels(self, pixels: np.ndarray) -> np.ndarray:
        """Embed a uint8 batch of shape (N, size, size, 3); returns (N, D) unit float32 rows."""
        import torch

        with self.lock, torch.inference_mode():
            batch = torch.from_numpy(pixels).to(self.device, non_blocking=True)
            batch = batch.permute(0, 3, 1, 2).float()
            batch = (batch - self._mean) / self._std
            with self._precision():
                features = self.model.encode_image(batch)
            features = torch.nn.functional.normalize(features.float(), dim=-1)
            return features.cpu().numpy().astype(np.float32, copy=False)

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        """Embed texts with the text tower; returns (N, D) unit float32 rows."""
        import torch

        with self.lock, torch.inference_mode():
            tokens = self.tokenizer(list(texts)).to(self.device)
            with self._precision():
                features = self.model.encode_text(tokens)
            features = torch.nn.functional.normalize(features.float(), dim=-1)
            return features.cpu().numpy().astype(np.float32, copy=False)


_encoders: dict[tuple[ModelSpec, str], Encoder] = {}
_encoders_lock = threading.Lock()


def _build(spec: ModelSpec, device: str) -> Encoder:
    import open_clip
    import torch

    if spec.is_random:
        logger.warning(
            "Loading %s with RANDOM weights (seeded): embeddings and similarity search are "
            "not semantic. Set NUCLEUS_EMBEDDING_WEIGHTS to a pretrained tag or checkpoint.",
            spec.architecture,
        )
        # Seed a private RNG stream so every process builds the same random network.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(RANDOM_SEED)
            model = open_clip.create_model(spec.architecture, pretrained=None, device="cpu")
    else:
        path = weights_local_path(spec)
        if path is None and (spec.is_file or not hub_reachable()):
            raise WeightsUnavailable(unavailable_message(spec))
        options: dict[str, Any] = {}
        if path is not None and not spec.is_file:
            # Load the cached file directly: asking open_clip for the tag would make
            # huggingface_hub check the hub first, which takes a minute to time out
            # offline. The tag's preprocessing and activation come along explicitly.
            cfg = _pretrained_cfg(spec)
            options["force_preprocess_cfg"] = {
                k: cfg[k] for k in ("mean", "std", "interpolation", "resize_mode") if k in cfg
            }
            options["force_quick_gelu"] = bool(cfg.get("quick_gelu", False))
        try:
            model = open_clip.create_model(
                spec.architecture,
                pretrained=path or spec.weights,
                device="cpu",
                cache_dir=settings.NUCLEUS_EMBEDDING_CACHE_DIR,
                **options,
            )
        except (RuntimeError, FileNotFoundError, OSError) as exc:
            raise WeightsUnavailable(f"{unavailable_message(spec)} ({exc})") from exc
    model = model.to(device).eval()
    tokenizer = open_clip.get_tokenizer(spec.architecture)
    return Encoder(spec, model, tokenizer, device)


def encoder_for(spec: ModelSpec) -> Encoder:
    """The loaded encoder for `spec`, built once per process and device."""
    device = device_choose()
    key = (spec, device)
    encoder = _encoders.get(key)
    if encoder is None:
        with _encoders_lock:
            encoder = _encoders.get(key)
            if encoder is None:
                encoder = _build(spec, device)
                _encoders[key] = encoder
    return encoder
