"""The pipeline's own decoding matches open_clip's preprocessing."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from embeddings.imaging import DecodeError, pixels_decode, thumbnail_suffices
from tests.embedding_factories import jpeg_bytes


@pytest.mark.parametrize("size", [(300, 200), (200, 300), (224, 224), (97, 61)])
def test_it_resizes_and_crops_like_open_clip(size: tuple[int, int]) -> None:
    import open_clip

    out = io.BytesIO()
    rng = np.random.default_rng(1)
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(out, "PNG")
    data = out.getvalue()
    transform = open_clip.image_transform(224, is_train=False)

    expected = transform(Image.open(io.BytesIO(data))).numpy()
    ours = pixels_decode(data, 224).astype(np.float32) / 255.0
    mean = np.array(open_clip.OPENAI_DATASET_MEAN, dtype=np.float32)
    std = np.array(open_clip.OPENAI_DATASET_STD, dtype=np.float32)
    ours = ((ours - mean) / std).transpose(2, 0, 1)

    assert ours.shape == expected.shape == (3, 224, 224)
    # open_clip keeps floats where we round to uint8: at most half a grey level apart.
    assert (
        float(np.abs(ours - expected).max()) < 0.6 / 255 / min(open_clip.OPENAI_DATASET_STD) + 1e-3
    )


def test_it_decodes_large_jpegs_at_reduced_size_to_the_model_input() -> None:
    pixels = pixels_decode(jpeg_bytes(3, (2000, 1500)), 224)
    assert pixels.shape == (224, 224, 3) and pixels.dtype == np.uint8


def test_it_refuses_bytes_that_are_no_image() -> None:
    with pytest.raises(DecodeError):
        pixels_decode(b"GIF89a broken", 224)


def test_it_uses_thumbnails_only_when_their_short_side_covers_the_input() -> None:
    assert thumbnail_suffices(1000, 1000, 256, 224)
    assert not thumbnail_suffices(1600, 900, 256, 224)  # 256x144
    assert thumbnail_suffices(200, 230, 256, 200)  # not scaled down at all
    assert not thumbnail_suffices(None, None, 256, 224)
