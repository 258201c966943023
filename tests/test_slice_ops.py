"""Slice operations: dynamic slices, slices from ids, set operations, samples, tagging by
query, and their API endpoints."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest
from django.db.models.expressions import RawSQL

from curation import itemsets, slices, versions
from curation.bulk.write import items_upsert
from curation.errors import InvalidInput
from curation.models import Item, ItemTag, Slice, SliceItem, Tag
from curation.services import slice_create
from tests.api_helpers import error_of, error_paths
from tests.slice_factories import box, numbered_items, write_items

pytestmark = pytest.mark.django_db


def refs(slice: Slice) -> set[str]:
    return set(itemsets.slice_items(slice).values_list("reference_id", flat=True))


def member_ids(slice: Slice) -> list[int]:
    return sorted(SliceItem.objects.filter(slice=slice).values_list("item_id", flat=True))


@pytest.fixture
def ids(dataset: Any) -> dict[str, int]:
    return numbered_items(dataset, 12)  # img-00000 .. img-00011, group = i % 3


# ------------------------------------------------------------------------- dynamic slices


def test_a_dynamic_slice_follows_its_query(dataset: Any, alice: Any, ids: dict[str, int]) -> None:
    group0, added = slices.slice_create_from_query(
        dataset=dataset, user=alice, name="g0", query="metadata.group = 0"
    )
    assert added == 0 and group0.is_dynamic
    assert refs(group0) == {"img-00000", "img-00003", "img-00006", "img-00009"}
    items_upsert(dataset=dataset, rows=[{"reference_id": "img-00001", "metadata": {"group": 0}}])
    assert "img-00001" in refs(group0)
    assert not SliceItem.objects.filter(slice=group0).exists()


def test_a_static_slice_from_a_query_keeps_the_matches_of_that_moment(
    dataset: Any, alice: Any, ids: dict[str, int]
) -> None:
    frozen, added = slices.slice_create_from_query(
        dataset=dataset, user=alice, name="g0", query="metadata.group = 0", dynamic=False
    )
    assert added == 4 and not frozen.is_dynamic
    items_upsert(dataset=dataset, rows=[{"reference_id": "img-00001", "metadata": {"group": 0}}])
    assert len(refs(frozen)) == 4
    everything, added = slices.slice_create_from_query(
        dataset=dataset, user=alice, name="all", query=" ", dynamic=False
    )
    assert added == 12 and len(refs(everything)) == 12


def test_switching_a_slice_between_static_and_dynamic(
    dataset: Any, alice: Any, ids: dict[str, int]
) -> None:
    picked, _ = slice_create(
        dataset=dataset, user=alice, name="picked", reference_ids=["img-00001"]
    )
    slices.slice_query_update(slice=picked, query="metadata.index < 2")
    picked.refresh_from_db()
    assert picked.is_dynamic and refs(picked) == {"img-00000", "img-00001"}
    assert member_ids(picked) == []
    slices.slice_query_update(slice=picked, query="")
    picked.refresh_from_db()
    assert not picked.is_dynamic
    assert member_ids(picked) == sorted([ids["img-00000"], ids["img-00001"]])


def test_a_bad_query_is_refused_with_its_position(
    dataset: Any, alice: Any, ids: dict[str, int]
) -> None:
    with pytest.raises(InvalidInput) as caught:
        slices.slice_create_from_query(
            dataset=dataset, user=alice, name="x", query="metadata.group = "
        )
    assert caught.value.fields[0]["path"] == "query"
    assert not Slice.objects.filter(name="x").exists()


# --------------------------------------------------------------------------- from items


def test_a_slice_from_item_ids_and_reference_ids(
    dataset: Any, alice: Any, ids: dict[str, int]
) -> None:
    new, added = slices.slice_create_from_items(
        dataset=dataset,
        user=alice,
        name="picked",
        item_ids=[ids["img-00002"], ids["img-00003"], ids["img-00002"]],
        reference_ids=["img-00003", "img-00004"],
    )
    assert added == 3 and refs(new) == {"img-00002", "img-00003", "img-00004"}


def test_unknown_item_ids_refuse_the_whole_slice(
    dataset: Any, alice: Any, ids: dict[str, int], charlie: Any
) -> None:
    from curation.models import Dataset

    elsewhere = Dataset.objects.create(name="elsewhere", owner=charlie)
    foreign = write_items(elsewhere, [{"reference_id": "x"}])["x"]
    with pytest.raises(InvalidInput) as caught:
        slices.slice_create_from_items(
            dataset=dataset, user=alice, name="bad", item_ids=[ids["img-00001"], foreign]
        )
    assert [f["path"] for f in caught.value.fields] == ["item_ids[1]"]
    assert not Slice.objects.filter(name="bad").exists()


# ------------------------------------------------------------------------ set operations


@pytest.mark.parametrize(
    ("op", "expected"),
    [
        ("union", {0, 1, 2, 3, 4, 5, 6}),
        ("intersection", {3, 4}),
        ("difference", {0, 1, 2}),
    ],
)
def test_set_operations_of_two_slices(
    dataset: Any, alice: Any, ids: dict[str, int], op: str, expected: set[int]
) -> None:
    left, _ = slice_create(
        dataset=dataset, user=alice, name="left", reference_ids=[f"img-{i:05d}" for i in range(5)]
    )
    right, _ = slices.slice_create_from_query(
        dataset=dataset,
        user=alice,
        name="right",
        query="metadata.index >= 3 AND metadata.index <= 6",
    )
    new, added = slices.slice_combine(
        dataset=dataset,
        user=alice,
        name="combined",
        op=op,
        left=itemsets.ItemSet(dataset=dataset, slice=left),
        right=itemsets.ItemSet(dataset=dataset, slice=right),
    )
    assert added == len(expected)
    assert refs(new) == {f"img-{i:05d}" for i in expected}


def test_set_operations_take_versions_and_queries(
    dataset: Any, alice: Any, ids: dict[str, int]
) -> None:
    first, _ = slice_create(
        dataset=dataset, user=alice, name="first", reference_ids=["img-00000", "img-00001"]
    )
    v1 = versions.slice_version_create(slice=first, user=alice)
    versions.slice_version_create(slice=first, user=alice)
    new, _ = slices.slice_combine(
        dataset=dataset,
        user=alice,
        name="combined",
        op="union",
        left=itemsets.item_set_resolve(dataset=dataset, slice_id=first.pk, version=v1.number),
        right=itemsets.item_set_resolve(dataset=dataset, query="metadata.index = 11"),
    )
    assert refs(new) == {"img-00000", "img-00001", "img-00011"}


# ---------------------------------------------------------------------------- sampling


def sample(dataset: Any, alice: Any, name: str, **kw: Any) -> set[str]:
    kw.setdefault("source", itemsets.ItemSet(dataset=dataset))
    new, added = slices.slice_sample(dataset=dataset, user=alice, name=name, **kw)
    assert added == len(refs(new))
    return refs(new)


def test_a_random_sample_is_reproducible_with_its_seed(
    dataset: Any, alice: Any, ids: dict[str, int]
) -> None:
    first = sample(dataset, alice, "s1", size=5, seed=7)
    again = sample(dataset, alice, "s2", size=5, seed=7)
    other_seeds = [sample(dataset, alice, f"o{seed}", size=5, seed=seed) for seed in (1, 2, 3)]
    assert len(first) == 5 and first == again
    assert any(s != first for s in other_seeds)
    # A smaller sample with the same seed is a prefix of the same ranking.
    assert sample(dataset, alice, "s3", size=3, seed=7) < first
    assert len(sample(dataset, alice, "all", size=100, seed=7)) == 12


def test_a_stratified_sample_keeps_metadata_proportions(dataset: Any, alice: Any) -> None:
    rows = [
        {"reference_id": f"r{i}", "metadata": {"weather": w}}
        for i, w in enumerate(["rain"] * 60 + ["sun"] * 30 + ["fog"] * 10)
    ]
    write_items(dataset, rows)
    picked = sample(dataset, alice, "strat", size=20, seed=3, stratify_by="metadata.weather")
    weather = dict(
        Item.objects.filter(dataset=dataset).values_list("reference_id", "metadata__weather")
    )
    assert Counter(weather[r] for r in picked) == {"rain": 12, "sun": 6, "fog": 2}
    assert picked == sample(
        dataset, alice, "strat2", size=20, seed=3, stratify_by="metadata.weather"
    )


def test_a_stratified_sample_by_label_uses_each_items_main_label(dataset: Any, alice: Any) -> None:
    rows = (
        [
            {"reference_id": f"car{i}", "annotations": [box("car"), box("car"), box("bus")]}
            for i in range(8)
        ]
        + [{"reference_id": f"bus{i}", "annotations": [box("bus")]} for i in range(4)]
        + [{"reference_id": f"none{i}"} for i in range(4)]
    )
    write_items(dataset, rows)
    picked = sample(dataset, alice, "by-label", size=8, seed=1, stratify_by="label")
    assert Counter(r.rstrip("0123456789") for r in picked) == {"car": 4, "bus": 2, "none": 2}


def test_sampling_from_a_slice_stays_inside_it(
    dataset: Any, alice: Any, ids: dict[str, int]
) -> None:
    group1, _ = slices.slice_create_from_query(
        dataset=dataset, user=alice, name="g1", query="metadata.group = 1"
    )
    picked = sample(
        dataset, alice, "s", size=2, seed=0, source=itemsets.ItemSet(dataset=dataset, slice=group1)
    )
    assert len(picked) == 2 and picked <= refs(group1)


def test_largest_remainder_allocation_adds_up() -> None:
    assert slices.sample_allocate([("a", 1), ("b", 1), ("c", 1)], 2) == [
        ("a", 1),
        ("b", 1),
        ("c", 0),
    ]
    assert slices.sample_allocate([("a", 5), (None, 5)], 3) == [("a", 2), (None, 1)]
    assert slices.sample_allocate([("a", 2), ("b", 1)], 10) == [("a", 2), ("b", 1)]
    quotas = slices.sample_allocate([("a", 333), ("b", 333), ("c", 334)], 100)
    assert sum(q for _, q in quotas) == 100


@pytest.mark.parametrize(
    ("kw", "path"),
    [
        ({"size": 0, "seed": 1}, "size"),
        ({"size": 2, "seed": -1}, "seed"),
        ({"size": 2, "seed": 1, "stratify_by": "weather"}, "stratify_by"),
        ({"size": 2, "seed": 1, "stratify_by": "metadata."}, "stratify_by"),
    ],
)
def test_bad_sample_options_name_the_field(
    dataset: Any, alice: Any, kw: dict[str, Any], path: str
) -> None:
    with pytest.raises(InvalidInput) as caught:
        slices.slice_sample(
            dataset=dataset, user=alice, name="bad", source=itemsets.ItemSet(dataset=dataset), **kw
        )
    assert caught.value.fields[0]["path"] == path
    assert not Slice.objects.filter(name="bad").exists()


# --------------------------------------------------------------------------------- tags


def tagged(name: str) -> set[str]:
    return set(ItemTag.objects.filter(tag__name=name).values_list("item__reference_id", flat=True))


def test_tagging_and_untagging_by_query(dataset: Any, ids: dict[str, int]) -> None:
    _, added = slices.tag_add_matching(dataset=dataset, name="g2", query="metadata.group = 2")
    assert added == 4 and tagged("g2") == {"img-00002", "img-00005", "img-00008", "img-00011"}
    assert slices.tag_add_matching(dataset=dataset, name="g2", query="metadata.group = 2")[1] == 0
    _, removed = slices.tag_remove_matching(dataset=dataset, name="g2", query="metadata.index > 6")
    assert removed == 2 and tagged("g2") == {"img-00002", "img-00005"}
    _, removed = slices.tag_remove_matching(
        dataset=dataset, name="g2", item_ids=[ids["img-00002"], ids["img-00003"]]
    )
    assert removed == 1 and tagged("g2") == {"img-00005"}
    _, everything = slices.tag_add_matching(dataset=dataset, name="all", query="")
    assert everything == 12 and Tag.objects.filter(name="all").exists()


# ---------------------------------------------------------------------------------- API


def url(dataset: Any, tail: str) -> str:
    return f"/api/v1/datasets/{dataset.pk}/{tail}"


def test_api_creates_slices_from_queries_items_operations_and_samples(
    client_for: Any, dataset: Any, bob: Any, ids: dict[str, int]
) -> None:
    client = client_for(bob)
    dynamic = client.post(
        url(dataset, "slices/from-query"),
        {"name": "g0", "query": "metadata.group = 0"},
        format="json",
    )
    assert dynamic.status_code == 201, dynamic.json()
    body = dynamic.json()["slice"]
    assert body["is_dynamic"] and body["query"] == "metadata.group = 0" and body["item_count"] == 4

    picked = client.post(
        url(dataset, "slices/from-items"),
        {"name": "picked", "item_ids": [ids["img-00000"], ids["img-00001"]]},
        format="json",
    )
    assert picked.status_code == 201 and picked.json()["item_count"] == 2

    combined = client.post(
        url(dataset, "slices/combine"),
        {
            "name": "both",
            "op": "intersection",
            "left": {"slice": dynamic.json()["slice"]["id"]},
            "right": {"slice": picked.json()["slice"]["id"]},
        },
        format="json",
    )
    assert combined.status_code == 201, combined.json()
    assert combined.json()["item_count"] == 1

    sampled = client.post(
        url(dataset, "slices/sample"),
        {"name": "s", "size": 3, "seed": 5, "stratify_by": "metadata.group"},
        format="json",
    )
    assert sampled.status_code == 201, sampled.json()
    assert sampled.json()["slice"]["item_count"] == 3

    made_static = client.put(
        url(dataset, f"slices/{body['id']}/query"), {"query": ""}, format="json"
    )
    assert made_static.status_code == 200 and not made_static.json()["is_dynamic"]
    assert made_static.json()["item_count"] == 4


def test_api_reports_bad_input_by_field(
    client_for: Any, dataset: Any, bob: Any, ids: dict[str, int]
) -> None:
    client = client_for(bob)
    bad_query = client.post(
        url(dataset, "slices/from-query"), {"name": "x", "query": "metadata.group >"}, format="json"
    )
    assert error_paths(bad_query) == ["query"]
    assert "column" in bad_query.json()["error"]["message"]
    unknown = client.post(
        url(dataset, "slices/from-items"),
        {"name": "x", "item_ids": [ids["img-00000"], 10**12]},
        format="json",
    )
    assert error_paths(unknown) == ["item_ids[1]"]
    missing_slice = client.post(
        url(dataset, "slices/combine"),
        {"name": "x", "op": "union", "left": {"slice": 10**9}, "right": {}},
        format="json",
    )
    assert error_paths(missing_slice) == ["left.slice"]
    bad_op = client.post(
        url(dataset, "slices/combine"),
        {"name": "x", "op": "xor", "left": {}, "right": {}},
        format="json",
    )
    assert error_paths(bad_op) == ["op"]
    similarity = client.post(
        url(dataset, "slices/from-query"),
        {"name": "x", "query": "", "similarity": {"reference_id": "nope"}},
        format="json",
    )
    assert error_paths(similarity) == ["similarity.reference_id"]
    taken = client.post(url(dataset, "slices/sample"), {"name": "s", "size": 1}, format="json")
    assert taken.status_code == 201
    error_of(
        client.post(url(dataset, "slices/sample"), {"name": "s", "size": 1}, format="json"),
        409,
        "conflict",
    )
    assert not Slice.objects.filter(name="x").exists()


def test_api_tags_by_query(client_for: Any, dataset: Any, bob: Any, ids: dict[str, int]) -> None:
    client = client_for(bob)
    added = client.post(
        url(dataset, "tags/add-matching"),
        {"name": "g1", "query": "metadata.group = 1"},
        format="json",
    )
    assert added.status_code == 200, added.json()
    assert added.json()["changed"] == 4 and added.json()["tag"]["item_count"] == 4
    removed = client.post(
        url(dataset, "tags/remove-matching"),
        {"name": "g1", "item_ids": [ids["img-00001"]]},
        format="json",
    )
    assert removed.json()["changed"] == 1
    assert error_paths(
        client.post(url(dataset, "tags/add-matching"), {"name": "g1"}, format="json")
    ) == ["query"]
    assert error_paths(
        client.post(
            url(dataset, "tags/remove-matching"), {"name": "nope", "query": ""}, format="json"
        )
    ) == ["name"]


def test_api_pages_through_a_live_slice(
    client_for: Any, dataset: Any, alice: Any, victor: Any, ids: dict[str, int]
) -> None:
    group0, _ = slices.slice_create_from_query(
        dataset=dataset, user=alice, name="g0", query="metadata.group = 0"
    )
    client = client_for(victor)
    first = client.get(url(dataset, f"slices/{group0.pk}/records?limit=3")).json()
    assert [r["reference_id"] for r in first["results"]] == ["img-00000", "img-00003", "img-00006"]
    assert first["results"][0]["annotations"][0]["label"] == "car"
    second = client.get(first["next"]).json()
    assert [r["reference_id"] for r in second["results"]] == ["img-00009"] and second[
        "next"
    ] is None


def test_a_records_page_keeps_numbers_past_64_bits_and_past_float_exact(
    client_for: Any, dataset: Any, alice: Any, ids: dict[str, int]
) -> None:
    huge = 10**400  # jsonb keeps it; PostgreSQL writes it out as 401 digits
    Item.objects.filter(pk=ids["img-00000"]).update(
        metadata=RawSQL("jsonb_build_object('n', %s::numeric, 'big', %s::numeric)", [2**70, huge])
    )
    found, _ = slices.slice_create_from_query(
        dataset=dataset, user=alice, name="long", query='reference_id = "img-00000"'
    )
    response = client_for(alice).get(url(dataset, f"slices/{found.pk}/records"))
    assert response.status_code == 200
    metadata = json.loads(response.content)["results"][0]["metadata"]
    assert metadata == {"n": 2**70, "big": huge}
    assert isinstance(metadata["n"], int) and isinstance(metadata["big"], int)


def test_api_viewers_cannot_change_slices_and_strangers_see_nothing(
    client_for: Any, dataset: Any, alice: Any, victor: Any, charlie: Any, ids: dict[str, int]
) -> None:
    existing, _ = slice_create(dataset=dataset, user=alice, name="existing")
    writes = [
        ("post", "slices/from-query", {"name": "v", "query": ""}),
        ("post", "slices/from-items", {"name": "v", "item_ids": []}),
        ("post", "slices/combine", {"name": "v", "op": "union", "left": {}, "right": {}}),
        ("post", "slices/sample", {"name": "v", "size": 1}),
        ("put", f"slices/{existing.pk}/query", {"query": "metadata.group = 1"}),
        ("post", "tags/add-matching", {"name": "v", "query": ""}),
        ("post", "tags/remove-matching", {"name": "v", "query": ""}),
    ]
    viewer, stranger = client_for(victor), client_for(charlie)
    for method, tail, data in writes:
        error_of(
            getattr(viewer, method)(url(dataset, tail), data, format="json"),
            403,
            "permission_denied",
        )
        error_of(
            getattr(stranger, method)(url(dataset, tail), data, format="json"), 404, "not_found"
        )
    assert viewer.get(url(dataset, f"slices/{existing.pk}/records")).status_code == 200
    error_of(stranger.get(url(dataset, f"slices/{existing.pk}/records")), 404, "not_found")
    assert list(Slice.objects.values_list("name", flat=True)) == ["existing"]
    assert not Tag.objects.exists()


# --------------------------------------------------------------------------- similarity


def test_a_dynamic_slice_with_a_similarity_condition_is_evaluated_when_read(
    dataset: Any, alice: Any
) -> None:
    from embeddings.services import custom_model_create, vectors_upload

    write_items(
        dataset,
        [
            {"reference_id": "a", "metadata": {"weather": "rain"}},
            {"reference_id": "b", "metadata": {"weather": "rain"}},
            {"reference_id": "c", "metadata": {"weather": "sun"}},
            {"reference_id": "d", "metadata": {"weather": "rain"}},
        ],
    )
    model = custom_model_create(dataset=dataset, name="vecs", dimension=2)
    vectors = {"a": [1, 0], "b": [0.9, 0.1], "c": [0.8, 0.3], "d": [-1, 0]}
    vectors_upload(
        dataset=dataset,
        model=model,
        rows=[{"reference_id": r, "vector": v} for r, v in vectors.items()],
    )
    like_a, _ = slices.slice_create_from_query(
        dataset=dataset,
        user=alice,
        name="like a",
        query="",
        similarity={"reference_id": "a", "model": "vecs", "limit": 2},
    )
    assert like_a.is_dynamic and refs(like_a) == {"b", "c"}
    rainy_like_a, _ = slices.slice_create_from_query(
        dataset=dataset,
        user=alice,
        name="rainy like a",
        query='metadata.weather = "rain"',
        similarity={"reference_id": "a", "model": "vecs", "limit": 2},
    )
    assert refs(rainy_like_a) == {"b", "d"}
    close, _ = slices.slice_create_from_query(
        dataset=dataset,
        user=alice,
        name="close to a",
        query="",
        similarity={"reference_id": "a", "model": "vecs", "limit": 10, "min_score": 0.9},
    )
    assert refs(close) == {"b", "c"}
    # New vectors count at the next read.
    write_items(dataset, [{"reference_id": "e"}])
    vectors_upload(dataset=dataset, model=model, rows=[{"reference_id": "e", "vector": [1, 0.01]}])
    assert refs(like_a) == {"b", "e"}


@pytest.mark.parametrize(
    ("similarity", "path"),
    [
        ({"reference_id": "a", "text": "x"}, "similarity"),
        ({"reference_id": "a", "limit": 0}, "similarity.limit"),
        ({"text": "cars", "min_score": 2}, "similarity.min_score"),
        ({"text": "cars", "k": 5}, "similarity.k"),
        ({"text": "  "}, "similarity.text"),
    ],
)
def test_bad_similarity_conditions_name_the_field(
    dataset: Any, alice: Any, similarity: dict[str, Any], path: str
) -> None:
    write_items(dataset, [{"reference_id": "a"}])
    with pytest.raises(InvalidInput) as caught:
        slices.slice_create_from_query(
            dataset=dataset, user=alice, name="bad", query="", similarity=similarity
        )
    assert caught.value.fields[0]["path"] == path


def test_the_query_language_and_listings_see_dynamic_slices(dataset, alice, victor, client_for):
    from curation.bulk.write import items_upsert
    from curation.errors import InvalidInput
    from curation.models import Item, Slice
    from curation.query import filter_items

    items_upsert(
        dataset=dataset,
        rows=[
            {"reference_id": "r1", "metadata": {"weather": "rain"}},
            {"reference_id": "r2", "metadata": {"weather": "rain"}},
            {"reference_id": "s1", "metadata": {"weather": "sun"}},
        ],
    )
    rainy = Slice.objects.create(dataset=dataset, name="rainy", query='metadata.weather = "rain"')
    found = filter_items(Item.objects.all(), "slice = rainy", dataset=dataset)
    assert sorted(found.values_list("reference_id", flat=True)) == ["r1", "r2"]

    client = client_for(victor)
    detail = client.get(f"/api/v1/datasets/{dataset.pk}/slices/{rainy.pk}").json()
    assert (detail["is_dynamic"], detail["item_count"]) == (True, 2)
    listed = client.get(f"/api/v1/datasets/{dataset.pk}/slices/{rainy.pk}/items").json()
    assert sorted(i["reference_id"] for i in listed["results"]) == ["r1", "r2"]
    filtered = client.get(f"/api/v1/datasets/{dataset.pk}/items?slice={rainy.pk}").json()
    assert sorted(i["reference_id"] for i in filtered["results"]) == ["r1", "r2"]

    loop = Slice.objects.create(dataset=dataset, name="loop", query="slice = loop")
    with pytest.raises(InvalidInput) as exc:
        list(filter_items(Item.objects.all(), "slice = loop", dataset=dataset))
    assert "refers to itself" in exc.value.message
    assert loop.is_dynamic


def test_a_page_of_a_live_slice_reads_its_dataset_once(
    client_for: Any,
    dataset: Any,
    alice: Any,
    victor: Any,
    ids: dict[str, int],
    django_assert_num_queries: Any,
) -> None:
    group0, _ = slices.slice_create_from_query(
        dataset=dataset, user=alice, name="g0", query="metadata.group = 0"
    )
    client = client_for(victor)
    assert client.get(url(dataset, f"slices/{group0.pk}/records?limit=2")).status_code == 200
    for limit in (2, 3):
        # The token, the dataset and victor's membership (the access check), the slice,
        # its matching ids, their records: the slice is not told its dataset again.
        with django_assert_num_queries(6):
            body = client.get(url(dataset, f"slices/{group0.pk}/records?limit={limit}")).json()
        assert len(body["results"]) == limit
