"""PNG text metadata in the format AUTOMATIC1111's web UI writes (the ``parameters`` chunk).

Other tools (A1111 "PNG Info", ComfyUI, civitai) read this chunk, so the layout is kept
byte-for-byte: the prompt, an optional ``Negative prompt:`` line, then one line of
``Key: value`` pairs. Pure byte handling: no PIL, no torch, never any re-encoding of pixels.
"""

from __future__ import annotations

import json
import struct
import zlib

from workers.api import ImageRequest

PARAMETERS_KEY = "parameters"
SAMPLER_NAMES = {
    "euler": "Euler",
    "euler_a": "Euler a",
    "ddim": "DDIM",
    "dpmpp_2m": "DPM++ 2M",
    "pndm": "PLMS",
    "lms": "LMS",
}
_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def output_size(request: ImageRequest) -> tuple[int, int]:
    """The size the images of ``request`` come out at (img2img: the request's size × upscale)."""
    scale = request.upscale if request.init_png is not None else 1.0
    return _snap(request.width * scale), _snap(request.height * scale)


def _snap(value: float) -> int:
    """Round to a multiple of 8, the latent grid of every SD model."""
    return max(8, round(value / 8) * 8)


def a1111_parameters(request: ImageRequest, seed: int, model_name: str) -> str:
    """The ``parameters`` text for one image of ``request`` made from ``seed``."""
    width, height = output_size(request)
    fields: dict[str, object] = {
        "Steps": request.steps,
        "Sampler": SAMPLER_NAMES.get(request.scheduler, request.scheduler),
        "CFG scale": float(request.cfg),
        "Seed": seed,
        "Size": f"{width}x{height}",
        "Model": model_name,
    }
    if request.init_png is not None:
        fields["Denoising strength"] = request.strength
        if request.upscale != 1:
            fields["Hires upscale"] = request.upscale
    lines = [request.prompt]
    if request.negative:
        lines.append(f"Negative prompt: {request.negative}")
    lines.append(", ".join(f"{k}: {_quote(str(v))}" for k, v in fields.items()))
    return "\n".join(lines)


def _quote(text: str) -> str:
    """A1111's ``quote``: values holding separators are written as JSON strings."""
    if "," not in text and "\n" not in text and ":" not in text:
        return text
    return json.dumps(text, ensure_ascii=False)


def add_parameters(png_bytes: bytes, text: str) -> bytes:
    """``png_bytes`` with a ``parameters`` text chunk inserted before the image data.

    Latin-1 text goes in a ``tEXt`` chunk, as PIL (and so A1111) writes it; anything else
    in an uncompressed ``iTXt`` chunk (UTF-8).
    """
    chunks = list(_chunks(png_bytes))
    first_idat = next(i for i, (kind, _) in enumerate(chunks) if kind == b"IDAT")
    chunks.insert(first_idat, _text_chunk(PARAMETERS_KEY, text))
    return _SIGNATURE + b"".join(_encode_chunk(kind, data) for kind, data in chunks)


def read_parameters(png_bytes: bytes) -> str | None:
    """The ``parameters`` text of a PNG, or None when it has none."""
    for kind, data in _chunks(png_bytes):
        text = _decode_text(kind, data)
        if text is not None and text[0] == PARAMETERS_KEY:
            return text[1]
    return None


def _chunks(png_bytes: bytes) -> list[tuple[bytes, bytes]]:
    if not png_bytes.startswith(_SIGNATURE):
        raise ValueError("not a PNG file")
    chunks, pos = [], len(_SIGNATURE)
    while pos + 8 <= len(png_bytes):
        (length,) = struct.unpack(">I", png_bytes[pos : pos + 4])
        kind = png_bytes[pos + 4 : pos + 8]
        chunks.append((kind, png_bytes[pos + 8 : pos + 8 + length]))
        pos += 12 + length
    return chunks


def _encode_chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def _text_chunk(key: str, text: str) -> tuple[bytes, bytes]:
    try:
        return b"tEXt", key.encode("latin-1") + b"\0" + text.encode("latin-1")
    except UnicodeEncodeError:
        return b"iTXt", key.encode("latin-1") + b"\0\0\0\0\0" + text.encode("utf-8")


def _decode_text(kind: bytes, data: bytes) -> tuple[str, str] | None:
    if kind == b"tEXt":
        key, _, value = data.partition(b"\0")
        return key.decode("latin-1"), value.decode("latin-1")
    if kind == b"iTXt":
        key, _, rest = data.partition(b"\0")
        compressed, rest = rest[0], rest[2:]
        _language, _, rest = rest.partition(b"\0")
        _translated, _, value = rest.partition(b"\0")
        raw = zlib.decompress(value) if compressed else value
        return key.decode("latin-1"), raw.decode("utf-8")
    if kind == b"zTXt":
        key, _, rest = data.partition(b"\0")
        return key.decode("latin-1"), zlib.decompress(rest[1:]).decode("latin-1")
    return None
