"""The pipeline's own decoding matches open_clip's preprocessing."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from embeddings.imaging import DecodeError, crop_box, pixels_decode, thumbnail_suffices
from tests.embedding_factories import jpeg_bytes


@pytest.mark.parametrize(
    "size", [(300, 200), (200, 300), (224, 224), (97, 61), (224, 300), (13, 200), (200, 13)]
)
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


def test_it_stays_close_to_open_clip_for_extreme_aspect_ratios() -> None:
    import open_clip

    # A smooth image: the two resampling passes may run in another order than open_clip's
    # whole-image resize, which moves noise by several grey levels but gradients by ~1.
    ramp = np.linspace(0, 255, 1300, dtype=np.float32)
    rgb = np.stack([np.tile(ramp[:, None], (1, 13))] * 3, axis=-1).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(rgb).save(out, "PNG")
    expected = open_clip.image_transform(224, is_train=False).transforms[:2]
    reference = np.array(expected[1](expected[0](Image.open(io.BytesIO(out.getvalue())))))

    ours = pixels_decode(out.getvalue(), 224)

    assert ours.shape == reference.shape == (224, 224, 3)
    assert int(np.abs(ours.astype(int) - reference.astype(int)).max()) <= 2


def test_it_crops_before_resizing_so_extreme_aspect_ratios_stay_small() -> None:
    # Resize-then-crop would first make a 10x100000 image 224x2240000 (1.5 GB of RGB);
    # the box is the 10x10 centre, the only region the model's input is made from.
    assert crop_box(10, 100_000, 224) == pytest.approx((0, 49_995, 10, 50_005), abs=0.01)
    assert crop_box(100_000, 10, 224) == pytest.approx((49_995, 0, 50_005, 10), abs=0.01)
    assert crop_box(224, 224, 224) == (0, 0, 224, 224)


def test_it_decodes_a_10_by_100000_image_to_the_model_size_in_little_memory() -> None:
    out = io.BytesIO()
    Image.new("RGB", (10, 100_000), (200, 30, 30)).save(out, "PNG")
    Image.core.reset_stats()  # Pillow's own count of the memory blocks it allocates

    pixels = pixels_decode(out.getvalue(), 64)

    assert pixels.shape == (64, 64, 3)
    assert (pixels == (200, 30, 30)).all()
    # The decoded image takes 4 MB; resizing it whole first would add 64x640000 (164 MB).
    allocated = Image.core.get_stats()["allocated_blocks"] * Image.core.get_block_size()
    assert allocated < 100 * 2**20


def test_it_opens_only_the_formats_ingest_accepts() -> None:
    out = io.BytesIO()
    Image.new("RGB", (32, 32), (1, 2, 3)).save(out, "PPM")  # Pillow reads it; ingest does not

    with pytest.raises(DecodeError):
        pixels_decode(out.getvalue(), 224)
