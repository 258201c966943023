"""Image quality signals: each on constructed images whose answer is known, stored by the
real ingest path, filled in for older items by the resumable quality job, and reached
through the query language (quality.<signal>) and the API."""

from __future__ import annotations

import io
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageFilter

from curation.bulk.validate import ItemRecord
from curation.bulk.write import records_write
from curation.ingest.services import ingest_enqueue
from curation.jobs import job_run
from curation.media import image_decode, media_process, media_quality
from curation.models import Dataset, Item, JobStatus
from curation.quality import (
    QUALITY_FIELDS,
    Quality,
    image_quality,
    near_uniform,
    surely_varied,
    working_copy,
)
from curation.quality import jobs as quality_jobs
from curation.query import QueryError, validate_query
from tests.api_helpers import error_of, url
from tests.embedding_factories import items_with_images


class Crash(BaseException):
    pass


def _sharp(size: tuple[int, int] = (400, 300), seed: int = 0) -> Image.Image:
    """Random 10-pixel colour blocks: hard edges everywhere."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, (size[1] // 10, size[0] // 10, 3), dtype=np.uint8)
    return Image.fromarray(blocks, "RGB").resize(size, Image.Resampling.NEAREST)


def _png(im: Image.Image) -> bytes:
    out = io.BytesIO()
    im.save(out, "PNG")
    return out.getvalue()


def _jpeg(im: Image.Image) -> bytes:
    out = io.BytesIO()
    im.save(out, "JPEG", quality=90)
    return out.getvalue()


def _quality(im: Image.Image) -> Quality:
    return image_quality(working_copy(im), width=im.width, height=im.height)


# ------------------------------------------------------------------ the signals themselves


def test_a_blank_image_is_uniform_with_zero_entropy_contrast_and_sharpness() -> None:
    blank = _quality(Image.new("RGB", (300, 200), (240, 240, 240)))
    assert blank.uniform is True
    assert (blank.entropy, blank.contrast, blank.blur, blank.saturation) == (0, 0, 0, 0)
    assert blank.brightness == pytest.approx(240, abs=0.5)
    # A speck on a blank page is still near-uniform; a picture is not.
    speck = Image.new("RGB", (300, 200), (255, 255, 255))
    speck.paste((0, 0, 0), (10, 10, 14, 14))
    assert _quality(speck).uniform is True
    assert _quality(_sharp()).uniform is False


def test_the_uniform_shortcut_never_skips_a_near_uniform_image() -> None:
    """surely_varied skips near_uniform on varied images; on the most varied images that
    are still near-uniform (99% of the pixels read within the tolerance, at its edge, the
    other 1% as far off as can be) it must not."""
    rng = np.random.default_rng(3)
    for colour in ((0, 0, 0), (255, 255, 255), (12, 200, 40)):
        pixels = np.empty((192, 256, 3), dtype=np.int16)
        pixels[...] = colour
        # every pixel at the tolerance's edge, away from the middle of the range
        edge = np.where(np.array(colour) < 128, 12, -12)
        pixels += rng.choice([0, 1], size=pixels.shape[:2])[..., None] * edge
        rows, cols = 96, 128  # the pixels near_uniform reads: every other row and column
        far = rng.choice(rows * cols, size=rows * cols // 100, replace=False)
        pixels[2 * (far // cols), 2 * (far % cols)] = 255 - np.array(colour)
        im = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
        bands = [np.asarray(b) for b in im.split()]
        luma = np.asarray(im.convert("L"))
        assert near_uniform(bands), colour
        assert not surely_varied(luma), colour
    photo = _sharp()
    assert surely_varied(np.asarray(photo.convert("L")))
    assert not near_uniform([np.asarray(b) for b in photo.split()])


def test_a_blurred_copy_has_lower_sharpness_than_its_original() -> None:
    sharp = _sharp()
    blurred = sharp.filter(ImageFilter.GaussianBlur(4))
    original, soft = _quality(sharp), _quality(blurred)
    assert soft.blur < original.blur / 10
    assert original.blur > 400 and soft.blur < 40
    # The same through JPEG bytes and the ingest decode.
    assert image_decode(_jpeg(blurred)).quality.blur < image_decode(_jpeg(sharp)).quality.blur


def test_a_darker_copy_has_lower_brightness_and_contrast() -> None:
    sharp = _sharp()
    dark = sharp.point(lambda v: v // 4)
    bright, dim = _quality(sharp), _quality(dark)
    assert dim.brightness == pytest.approx(bright.brightness / 4, abs=2)
    assert dim.contrast < bright.contrast / 3
    assert dim.brightness < 40 < bright.brightness


def test_saturation_is_zero_for_grey_and_full_for_a_pure_colour() -> None:
    assert _quality(_sharp().convert("L")).saturation == 0
    assert _quality(_sharp().convert("L").convert("RGB")).saturation == 0
    assert _quality(Image.new("RGB", (50, 50), (255, 0, 0))).saturation == 255


def test_entropy_counts_the_grey_levels_used() -> None:
    assert _quality(Image.new("L", (64, 64), 90)).entropy == 0
    halves = Image.new("L", (64, 64), 0)
    halves.paste(255, (0, 0, 32, 64))
    assert _quality(halves).entropy == pytest.approx(1.0)
    ramp = Image.fromarray(np.tile(np.arange(256, dtype=np.uint8), (4, 1)), "L")
    assert _quality(ramp).entropy == pytest.approx(8.0)


def test_aspect_comes_from_the_full_size_as_shown() -> None:
    long = _quality(Image.new("RGB", (1000, 10), (10, 200, 30)))
    assert long.aspect == 100
    # EXIF orientation 6 (rotated 90 degrees): shown 300 wide by 400 high.
    out = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6
    _sharp((400, 300)).save(out, "JPEG", exif=exif)
    assert image_decode(out.getvalue()).quality.aspect == pytest.approx(0.75)


def test_signals_do_not_depend_on_the_original_resolution() -> None:
    """Computed on the 256-pixel working copy: the same picture at 4x the size scores alike."""
    small = _sharp((320, 240)).filter(ImageFilter.GaussianBlur(1))
    big = small.resize((1280, 960), Image.Resampling.BICUBIC)
    a, b = _quality(small), _quality(big)
    assert b.blur == pytest.approx(a.blur, rel=0.35)
    assert b.brightness == pytest.approx(a.brightness, abs=1)


def test_stored_bytes_that_do_not_decode_have_no_quality() -> None:
    assert media_quality(b"not an image") is None
    assert media_quality(_png(_sharp())) == _quality(_sharp())


# ------------------------------------------------------------------ stored at ingest


@pytest.fixture
def pictures(import_root: Path) -> Path:
    """A folder of images whose signals are known."""
    folder = import_root / "quality"
    folder.mkdir(parents=True)
    sharp = _sharp()
    (folder / "sharp.png").write_bytes(_png(sharp))
    (folder / "blurred.png").write_bytes(_png(sharp.filter(ImageFilter.GaussianBlur(4))))
    (folder / "dark.png").write_bytes(_png(sharp.point(lambda v: v // 4)))
    (folder / "blank.png").write_bytes(_png(Image.new("RGB", (300, 200), (250, 250, 250))))
    (folder / "strip.png").write_bytes(_png(_sharp((1000, 10), seed=1)))
    return folder


def _ingest(dataset: Dataset, user: Any, folder: Path) -> dict[str, Item]:
    job = ingest_enqueue(dataset=dataset, user=user, source={"type": "folder", "path": str(folder)})
    finished = job_run(job_id=job.pk)
    assert finished is not None and finished.status == JobStatus.SUCCEEDED, finished
    return {i.reference_id: i for i in Item.objects.filter(dataset=dataset)}


def test_folder_ingest_stores_every_signal(dataset: Dataset, alice: Any, pictures: Path) -> None:
    items = _ingest(dataset, alice, pictures)

    for item in items.values():
        for field in QUALITY_FIELDS.values():
            assert getattr(item, field.column) is not None, (item.reference_id, field.name)
    assert items["blank.png"].quality_uniform is True
    assert items["sharp.png"].quality_uniform is False
    assert items["blurred.png"].quality_blur < items["sharp.png"].quality_blur
    assert items["dark.png"].quality_brightness < items["sharp.png"].quality_brightness / 3
    assert items["strip.png"].quality_aspect == 100
    assert items["blank.png"].quality_entropy == 0


def test_with_quality_off_ingest_leaves_the_signals_to_the_job(
    dataset: Dataset, alice: Any, pictures: Path, settings: Any
) -> None:
    settings.NUCLEUS_INGEST_QUALITY = False
    items = _ingest(dataset, alice, pictures)

    assert items and all(i.quality_brightness is None for i in items.values())
    assert all(i.phash is not None and i.width for i in items.values())  # the rest is done
    settings.NUCLEUS_INGEST_QUALITY = True
    job = job_run(job_id=quality_jobs.quality_job_start(dataset=dataset, user=alice).pk)
    assert job is not None and job.status == JobStatus.SUCCEEDED, job
    assert not Item.objects.filter(dataset=dataset, quality_blur__isnull=True).exists()


def test_a_new_image_replaces_the_signals_and_the_same_bytes_keep_them(dataset: Dataset) -> None:
    sharp = media_process(dataset_id=dataset.pk, data=_png(_sharp()), source_uri="a.png")
    records_write(dataset=dataset, records=[ItemRecord(reference_id="a", media=sharp)])
    stored = Item.objects.get(dataset=dataset, reference_id="a").quality_blur
    assert stored == pytest.approx(sharp.quality.blur)  # type: ignore[union-attr]

    # The same bytes without signals (a re-run that found them stored) keep them...
    same = media_process(dataset_id=dataset.pk, data=_png(_sharp()), source_uri="a.png")
    same.quality = None
    records_write(dataset=dataset, records=[ItemRecord(reference_id="a", media=same)])
    assert Item.objects.get(dataset=dataset, reference_id="a").quality_blur == stored
    # ...other bytes bring theirs (through the upsert path, the item exists).
    blank = Image.new("RGB", (30, 20), (0, 0, 0))
    other = media_process(dataset_id=dataset.pk, data=_png(blank), source_uri="a.png")
    records_write(dataset=dataset, records=[ItemRecord(reference_id="a", media=other)])
    item = Item.objects.get(dataset=dataset, reference_id="a")
    assert (item.quality_blur, item.quality_uniform, item.quality_brightness) == (0, True, 0)


# ------------------------------------------------------------------ the backfill job


def test_the_job_fills_in_older_items_resumably(
    dataset: Dataset, alice: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    payloads = [_png(_sharp((120, 90), seed=i)) for i in range(8)] + [b"broken"]
    items_with_images(dataset, len(payloads), payloads=payloads)  # no signals, as before
    monkeypatch.setattr(quality_jobs, "_BATCH", 3)
    read: list[bytes] = []
    real = quality_jobs.media_quality

    def crash_on_the_fifth(data: bytes) -> Any:
        read.append(data)
        if len(read) == 5:
            raise Crash()
        return real(data)

    monkeypatch.setattr(quality_jobs, "media_quality", crash_on_the_fifth)
    job = quality_jobs.quality_job_start(dataset=dataset, user=alice)
    with pytest.raises(Crash):
        job_run(job_id=job.pk)
    # The first batch committed with the job's position; the crashed one wrote nothing.
    assert Item.objects.filter(dataset=dataset, quality_blur__isnull=False).count() == 3

    job = job_run(job_id=job.pk)

    assert job is not None and job.status == JobStatus.SUCCEEDED, job
    # Reads of a batch overlap on threads, so how many of the crashed batch's reads ran
    # first depends on them; what holds: the batches before and after the crash were read
    # once, the crashed batch's images at most twice.
    reads = Counter(read)
    assert set(reads) == set(payloads)
    assert [reads[p] for p in payloads[:3] + payloads[6:]] == [1] * 6
    assert all(1 <= reads[p] <= 2 for p in payloads[3:6])
    assert job.result == {"computed": 8, "errors": 1, "total": 9}
    assert [e["message"] for e in job.errors] == ["the stored image does not decode"]
    filled = Item.objects.filter(dataset=dataset, quality_blur__isnull=False)
    assert filled.count() == 8
    first = filled.order_by("id").first()
    assert first is not None
    assert first.quality_blur == pytest.approx(_quality(_sharp((120, 90), seed=0)).blur)


# ------------------------------------------------------------------ query fields and API


def test_query_fields_select_exactly_the_expected_items(
    dataset: Dataset, alice: Any, pictures: Path, client_for: Any
) -> None:
    _ingest(dataset, alice, pictures)
    client = client_for(alice)

    def refs(query: str) -> list[str]:
        response = client.get(url(dataset, "items"), {"query": query, "limit": 100})
        assert response.status_code == 200, response.json()
        return sorted(row["reference_id"] for row in response.json()["results"])

    assert refs("quality.blur < 40") == ["blank.png", "blurred.png"]
    assert refs("quality.uniform = true") == ["blank.png"]
    assert refs("quality.uniform != true") == ["blurred.png", "dark.png", "sharp.png", "strip.png"]
    assert refs("quality.brightness < 40") == ["dark.png"]
    assert refs("quality.aspect > 3") == ["strip.png"]
    assert refs("quality.entropy = 0 OR quality.contrast > 1000") == ["blank.png"]
    assert refs("quality.blur * 2 > 80 AND NOT quality.uniform = true") == [
        "dark.png",
        "sharp.png",
        "strip.png",
    ]
    detail = client.get(url(dataset, "items"), {"query": "quality.uniform = true"}).json()
    quality = detail["results"][0]["quality"]
    assert set(quality) == set(QUALITY_FIELDS)
    assert quality["uniform"] is True and quality["entropy"] == 0


def test_an_unknown_quality_field_is_a_400_naming_it(dataset: Dataset, client_for: Any) -> None:
    response = client_for(dataset.owner).get(url(dataset, "items"), {"query": "quality.blurr < 3"})
    error = error_of(response, 400)
    assert [f["path"] for f in error["fields"]] == ["query"]
    assert "Unknown field 'quality.blurr'" in error["fields"][0]["message"]
    assert "Did you mean 'quality.blur'?" in error["fields"][0]["message"]


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        ("quality = 1", "Name a signal"),
        ("quality.blur.x < 1", "has no sub-fields"),
        ('quality.blur < "a"', "needs a number"),
        ("quality.uniform > 1", "needs true or false with = or !="),
    ],
)
def test_quality_field_mistakes_say_what_is_wrong(
    dataset: Dataset, query: str, fragment: str
) -> None:
    with pytest.raises(QueryError) as caught:
        validate_query(query, dataset=dataset)
    assert fragment in caught.value.message


def test_permissions(
    dataset: Dataset, victor: Any, bob: Any, charlie: Any, client_for: Any
) -> None:
    query = {"query": "quality.blur < 40"}
    # A stranger learns nothing: the dataset is a 404 for reads and for the job.
    error_of(client_for(charlie).get(url(dataset, "items"), query), 404)
    error_of(client_for(charlie).post(url(dataset, "quality/jobs")), 404)
    # A viewer reads and filters, but may not start the job; a curator may.
    assert client_for(victor).get(url(dataset, "items"), query).status_code == 200
    error_of(client_for(victor).post(url(dataset, "quality/jobs")), 403)
    response = client_for(bob).post(url(dataset, "quality/jobs"))
    assert response.status_code == 202, response.json()
    assert response.json()["kind"] == "quality"
