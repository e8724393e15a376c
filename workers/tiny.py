"""The bundled demo model: a Stable Diffusion 1.x pipeline with random weights, built offline.

It draws noise, honestly labelled as such, so that /imagine works with nothing downloaded.
``build_tiny_sd`` writes a diffusers folder (safetensors) that
``StableDiffusionPipeline.from_pretrained(folder)`` loads; the tokenizer is made here
from an in-memory byte-level vocabulary. This module must never fetch anything from a
model hub. torch/diffusers/transformers are imported inside the builder only, so the
torch-free host (``workers.local``) may use ``describe_model``.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEMO_MARKER = "atelier_demo.json"
DEMO_DESCRIPTION = "tiny random-weights demo model (it draws noise)"
_FORMAT_VERSION = 1


@dataclass(frozen=True, slots=True)
class _Dims:
    """The sizes of one variant (``tiny`` for tests and the demo, ``bench`` for timing)."""

    unet_channels: tuple[int, ...]
    unet_layers: int
    vae_channels: tuple[int, ...]
    text_hidden: int
    text_layers: int
    groups: int
    sample_size: int


_SIZES = {
    "tiny": _Dims((32, 64), 1, (8, 16, 16, 16), 32, 2, 8, 8),
    "bench": _Dims((128, 256, 256), 2, (32, 64, 64, 64), 256, 4, 32, 32),
}


def describe_model(path: Path) -> str:
    """A short text for users: the demo label, or the model's file/folder name."""
    if (path / DEMO_MARKER).is_file():
        return DEMO_DESCRIPTION
    return path.name


def build_tiny_sd(directory: Path, *, seed: int = 0, size: str = "tiny") -> Path:
    """Build (once) a random-weights SD 1.x diffusers folder at ``directory`` and return it.

    A folder that already holds a complete build (its marker names the same seed and
    size) is reused. The build goes to a temporary sibling first and is renamed into
    place, so a crash never leaves a half-written model behind.
    """
    if size not in _SIZES:
        raise ValueError(f"unknown size {size!r}; choose one of {sorted(_SIZES)}")
    wanted = {"format": _FORMAT_VERSION, "seed": seed, "size": size}
    if _is_complete(directory, wanted):
        return directory
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        _build_into(staging, _SIZES[size], seed)
        (staging / DEMO_MARKER).write_text(json.dumps({**wanted, "note": DEMO_DESCRIPTION}))
        if directory.exists():
            shutil.rmtree(directory)
        os.replace(staging, directory)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return directory


def _is_complete(directory: Path, wanted: dict[str, Any]) -> bool:
    try:
        marker = json.loads((directory / DEMO_MARKER).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(marker, dict) and all(marker.get(k) == v for k, v in wanted.items())


def _build_into(folder: Path, dims: _Dims, seed: int) -> None:
    import torch
    from diffusers import StableDiffusionPipeline

    torch.manual_seed(seed)
    tokenizer = _tokenizer(folder / "_vocab")
    pipe: Any = StableDiffusionPipeline(
        vae=_vae(dims),
        text_encoder=_text_encoder(dims, tokenizer),
        tokenizer=tokenizer,
        unet=_unet(dims),
        scheduler=_scheduler(),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(folder, safe_serialization=True)
    shutil.rmtree(folder / "_vocab")


def _byte_chars() -> list[str]:
    """GPT-2/CLIP's byte-to-printable-unicode table, in byte order."""
    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAD), *range(0xAE, 0x100)]
    extra = iter(range(256, 512))
    return [chr(b) if b in printable else chr(next(extra)) for b in range(256)]


def _tokenizer(vocab_dir: Path) -> Any:
    """A byte-level CLIP tokenizer with a handful of merges, written as vocab.json + merges.txt."""
    from transformers import CLIPTokenizer

    chars = _byte_chars()
    merges = [("t", "h"), ("th", "e</w>"), ("a", "n"), ("i", "n"), ("e", "r</w>")]
    tokens = [*chars, *(c + "</w>" for c in chars), *("".join(m) for m in merges)]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {token: i for i, token in enumerate(dict.fromkeys(tokens))}
    vocab_dir.mkdir()
    (vocab_dir / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False))
    merge_lines = ["#version: 0.2", *(f"{a} {b}" for a, b in merges)]
    (vocab_dir / "merges.txt").write_text("\n".join(merge_lines) + "\n")
    # The tokenizers backend wants merge pairs, although transformers annotates list[str].
    merge_pairs: Any = [tuple(line.split()) for line in merge_lines[1:]]
    return CLIPTokenizer(
        vocab=json.loads((vocab_dir / "vocab.json").read_text()),
        merges=merge_pairs,
        model_max_length=77,
    )


def _text_encoder(dims: _Dims, tokenizer: Any) -> Any:
    from transformers import CLIPTextConfig, CLIPTextModel

    config = CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=dims.text_hidden,
        intermediate_size=dims.text_hidden * 4,
        num_attention_heads=4,
        num_hidden_layers=dims.text_layers,
        max_position_embeddings=77,
        projection_dim=dims.text_hidden,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return CLIPTextModel(config)


def _unet(dims: _Dims) -> Any:
    from diffusers import UNet2DConditionModel

    depth = len(dims.unet_channels)
    return UNet2DConditionModel(
        sample_size=dims.sample_size,
        in_channels=4,
        out_channels=4,
        block_out_channels=dims.unet_channels,
        layers_per_block=dims.unet_layers,
        down_block_types=("CrossAttnDownBlock2D",) * (depth - 1) + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * (depth - 1),
        cross_attention_dim=dims.text_hidden,
        attention_head_dim=8,
        norm_num_groups=dims.groups,
    )


def _vae(dims: _Dims) -> Any:
    from diffusers import AutoencoderKL

    depth = len(dims.vae_channels)
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        block_out_channels=dims.vae_channels,
        down_block_types=("DownEncoderBlock2D",) * depth,
        up_block_types=("UpDecoderBlock2D",) * depth,
        layers_per_block=1,
        norm_num_groups=min(dims.groups, dims.vae_channels[0]),
        sample_size=dims.sample_size * 8,
    )


def _scheduler() -> Any:
    """SD 1.5's scheduler configuration (PNDM, scaled-linear betas)."""
    from diffusers import PNDMScheduler

    return PNDMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        num_train_timesteps=1000,
        skip_prk_steps=True,
        set_alpha_to_one=False,
        steps_offset=1,
    )
