"""The `nucleus` command line (nucleus/cli.py) against a real server: listing, ingest,
jobs with --wait, export, search, and exit statuses with clear messages on errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from curation.models import Item, Job, JobStatus, Slice
from nucleus.cli import main
from nucleus.client import NucleusClient
from tests.api_helpers import add_items, box, evaluation_world
from tests.client_support import (  # noqa: F401  (fixtures)
    InProcessWorker,
    client_of_fixture,
    server_fixture,
    token_of_fixture,
    worker_fixture,
)
from tests.embedding_factories import custom_model, items_with_vectors

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = "\n".join(
    json.dumps({"reference_id": ref, "metadata": {"weather": weather}})
    for ref, weather in (("a", "rain"), ("b", "sun"), ("c", "fog"))
)


@pytest.fixture
def as_user(server, token_of, monkeypatch):
    """Point the CLI at the live server with a token of the given user (from the env)."""

    def login(user):
        monkeypatch.setenv("NUCLEUS_URL", server)
        monkeypatch.setenv("NUCLEUS_TOKEN", token_of(user))

    return login


def run(capsys, *argv):
    """Run the CLI in process; returns (exit status, stdout, stderr)."""
    try:
        status = main(list(argv))
    except SystemExit as exc:  # argparse's usage errors
        status = exc.code
    out, err = capsys.readouterr()
    return status, out, err


# --------------------------------------------------------------------------- listing


def test_it_lists_datasets_and_slices(dataset, victor, as_user, capsys):
    add_items(dataset, {"reference_id": "a"}, {"reference_id": "b"})
    Slice.objects.create(dataset=dataset, name="night rain")
    as_user(victor)
    status, out, _ = run(capsys, "datasets")
    assert status == 0
    assert out.splitlines() == ["id\tname\trole\titems", f"{dataset.pk}\tstreet scenes\tviewer\t2"]
    status, out, _ = run(capsys, "datasets", "--json")
    assert [d["name"] for d in json.loads(out)] == ["street scenes"]
    status, out, _ = run(capsys, "slices", "--dataset", "street scenes")
    assert status == 0
    assert out.splitlines()[1].split("\t")[1:] == ["night rain", "0"]


def test_url_and_token_flags_override_the_environment(dataset, alice, server, token_of, capsys):
    status, out, _ = run(capsys, "--url", server, "--token", token_of(alice), "datasets")
    assert status == 0
    assert "street scenes" in out


# ---------------------------------------------------------------------------- errors


def test_api_errors_exit_1_with_the_servers_message(dataset, charlie, bob, as_user, capsys):
    as_user(charlie)
    status, out, err = run(capsys, "slices", "--dataset", str(dataset.pk))
    assert status == 1
    assert out == ""
    assert err.startswith("nucleus: error: 404 not_found:")
    as_user(bob)
    status, _, err = run(
        capsys, "ingest", "--dataset", "street scenes", "--server", "missing.jsonl"
    )
    assert status == 1
    assert "400 invalid" in err and "source.path:" in err


def test_a_bad_or_missing_token_is_a_clear_error(dataset, server, monkeypatch, capsys):
    monkeypatch.setenv("NUCLEUS_URL", server)
    monkeypatch.setenv("NUCLEUS_TOKEN", "nuc_wrong")
    status, _, err = run(capsys, "datasets")
    assert status == 1
    assert "401 authentication_failed" in err
    monkeypatch.delenv("NUCLEUS_TOKEN")
    status, _, err = run(capsys, "datasets")
    assert status == 2
    assert "no API token" in err


def test_an_unreachable_server_is_a_clear_error(monkeypatch, capsys):
    monkeypatch.setenv("NUCLEUS_URL", "http://127.0.0.1:9")  # the discard port: refused
    monkeypatch.setenv("NUCLEUS_TOKEN", "nuc_x")
    monkeypatch.setitem(NucleusClient.__init__.__kwdefaults__, "backoff", 0)  # fail fast
    status, _, err = run(capsys, "datasets")
    assert status == 1
    assert err.startswith("nucleus: error: GET http://127.0.0.1:9/api/v1/datasets")


# ------------------------------------------------------------------- ingest and jobs


def test_it_uploads_a_manifest_and_follows_the_job(dataset, bob, as_user, worker, capsys, tmp_path):
    manifest = tmp_path / "items.jsonl"
    manifest.write_text(MANIFEST)
    as_user(bob)
    status, out, err = run(capsys, "ingest", "--dataset", "street scenes", str(manifest), "--wait")
    assert status == 0, err
    job = Job.objects.get()
    assert out.splitlines()[0] == f"job {job.pk} (ingest): succeeded, 3/3 done, 0 errors"
    assert f"ingest job {job.pk}" in err  # the progress bar
    assert sorted(Item.objects.values_list("reference_id", flat=True)) == ["a", "b", "c"]


def test_it_starts_an_ingest_of_a_server_side_path_and_prints_the_job_id(
    dataset, bob, as_user, import_root, capsys
):
    (import_root / "coco.json").write_text(json.dumps({"images": [], "categories": []}))
    as_user(bob)
    status, out, _ = run(capsys, "ingest", "--dataset", str(dataset.pk), "coco.json")
    assert status == 0
    job = Job.objects.get()
    assert out.strip() == str(job.pk)
    assert job.params["source"]["type"] == "coco"  # from the suffix


def test_a_local_folder_is_not_uploaded(dataset, bob, as_user, capsys, tmp_path):
    as_user(bob)
    status, _, err = run(capsys, "ingest", "--dataset", "street scenes", str(tmp_path))
    assert status == 2
    assert "--server" in err
    assert not Job.objects.exists()


def test_jobs_shows_a_job_found_in_any_dataset_and_waits_for_it(
    dataset, bob, as_user, import_root, capsys
):
    (import_root / "m.jsonl").write_text(MANIFEST)
    as_user(bob)
    run(capsys, "ingest", "--dataset", "street scenes", "--server", "m.jsonl")
    job = Job.objects.get()
    status, out, _ = run(capsys, "jobs", str(job.pk))
    assert status == 0
    assert out.splitlines()[0] == f"job {job.pk} (ingest): queued, 0 done, 0 errors"
    worker = InProcessWorker().start()
    try:
        status, out, _ = run(capsys, "jobs", str(job.pk), "--wait")
    finally:
        worker.stop()
    assert status == 0
    assert "succeeded, 3/3 done" in out
    status, out, _ = run(capsys, "jobs", "--dataset", "street scenes")
    assert out.splitlines()[1].split("\t") == [str(job.pk), "ingest", "succeeded", "3/3", "0"]
    status, _, err = run(capsys, "jobs", "999999")
    assert status == 1 and "No job 999999" in err


def test_a_failed_or_cancelled_job_exits_1(dataset, bob, as_user, import_root, capsys):
    (import_root / "m.jsonl").write_text(MANIFEST)
    as_user(bob)
    run(capsys, "ingest", "--dataset", "street scenes", "--server", "m.jsonl")
    job = Job.objects.get()
    Job.objects.filter(pk=job.pk).update(status=JobStatus.CANCELLED)
    status, out, _ = run(capsys, "jobs", str(job.pk), "--wait", "--dataset", "street scenes")
    assert status == 1
    assert "cancelled" in out


# ---------------------------------------------------------------------------- export


@pytest.fixture
def frozen(dataset, bob, client_of):
    """Slice "night rain", version 1 = items a and b with one box each."""
    client = client_of(bob)
    client.items_upsert(
        dataset.pk,
        [
            {"reference_id": "a", "annotations": [{"id": "a1", **box()}]},
            {"reference_id": "b", "annotations": [{"id": "b1", **box(label="bus")}]},
            {"reference_id": "c"},
        ],
    )
    client.slice_create(dataset.pk, "night rain", reference_ids=["a", "b"])
    client.slice_freeze(dataset.pk, "night rain")
    client.slice_append(dataset.pk, "night rain", ["c"])
    return dataset


def test_it_exports_a_slice_version_as_coco_to_a_file(frozen, victor, as_user, capsys, tmp_path):
    as_user(victor)
    out_file = tmp_path / "out.json"
    status, _, err = run(
        capsys,
        "export",
        "--dataset",
        "street scenes",
        "--slice",
        "night rain",
        "--version",
        "1",
        "--format",
        "coco",
        "-o",
        str(out_file),
    )
    assert status == 0, err
    assert f"wrote {out_file}" in err
    coco = json.loads(out_file.read_text())
    assert len(coco["images"]) == 2 and len(coco["annotations"]) == 2


def test_it_exports_a_models_predictions_as_coco_results(
    frozen, bob, victor, client_of, as_user, capsys, tmp_path
):
    client = client_of(bob)
    client.model_create(frozen.pk, "det")
    client.predictions_upload(
        frozen.pk, "det", [{"reference_id": "a", "confidence": 0.6, **box(label="bus")}]
    )
    as_user(victor)
    out_file = tmp_path / "det.results.json"
    args = ["export", "--dataset", "street scenes", "--format", "coco_results"]
    status, _, err = run(capsys, *args, "--predictions", "det", "-o", str(out_file))
    assert status == 0, err
    (result,) = json.loads(out_file.read_text())
    assert result["score"] == 0.6 and result["category_id"] == 1  # bus, as the COCO export
    status, _, err = run(capsys, *args, "--predictions", "nope", "-o", str(out_file))
    assert status != 0 and "predictions" in err


def test_export_refuses_a_version_without_a_slice(frozen, victor, as_user, capsys):
    as_user(victor)
    status, _, err = run(capsys, "export", "--dataset", "street scenes", "--version", "1")
    assert status == 2
    assert "--version needs --slice" in err


def test_the_installed_command_streams_jsonl_to_stdout(frozen, victor, server, token_of):
    env = {**os.environ, "NUCLEUS_URL": server, "NUCLEUS_TOKEN": token_of(victor)}
    argv = ["export", "--dataset", "street scenes", "--slice", "night rain"]
    done = subprocess.run(
        [sys.executable, "-m", "nucleus.cli", *argv],
        cwd=ROOT,
        env=env,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    records = [json.loads(line) for line in done.stdout.decode().splitlines()]
    assert [r["reference_id"] for r in records] == ["a", "b", "c"]


def test_the_client_and_the_command_need_no_django():
    code = (
        "import sys, nucleus.client, nucleus.cli; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'django', 'rest_framework'}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, timeout=60, check=True
    )
    assert done.stdout.decode().strip() == "[]"


# ---------------------------------------------------------------------------- search


def test_search_prints_reference_ids_and_scores_best_first(dataset, victor, as_user, capsys):
    model = custom_model(dataset, 4)
    items_with_vectors(dataset, model, np.eye(4, dtype=np.float32) + 0.05)
    as_user(victor)
    status, out, err = run(
        capsys, "search", "--dataset", "street scenes", "--item", "v-00002", "-k", "2"
    )
    assert status == 0, err
    lines = [line.split("\t") for line in out.splitlines()]
    assert len(lines) == 2
    assert all(ref.startswith("v-") and ref != "v-00002" for ref, _ in lines)
    scores = [float(score) for _, score in lines]
    assert scores == sorted(scores, reverse=True)
    assert "random weights" not in err
    status, out, _ = run(
        capsys, "search", "--dataset", "street scenes", "--item", "v-00002", "--json"
    )
    assert len(json.loads(out)["results"]) == 3


def test_search_needs_one_kind_of_query(dataset, victor, as_user, capsys):
    as_user(victor)
    status, _, err = run(capsys, "search", "--dataset", "street scenes")
    assert status == 2
    status, _, err = run(
        capsys, "search", "--dataset", "street scenes", "--text", "x", "--item", "y"
    )
    assert status == 2 and "not allowed with" in err


# ------------------------------------------------------------------------- evaluate


def test_evaluate_waits_and_prints_the_coco_numbers_and_per_class_ap(
    dataset, bob, as_user, worker, capsys
):
    evaluation_world(dataset)
    as_user(bob)
    status, out, err = run(
        capsys,
        "evaluate",
        "--dataset",
        "street scenes",
        "--model",
        "yolo",
        "--name",
        "e1",
        "--wait",
    )
    assert status == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("evaluation ") and lines[0].endswith("(e1) of yolo: succeeded")
    numbers = dict(line.split("\t") for line in lines[2:14])
    assert list(numbers) == [
        "map",
        "map_50",
        "map_75",
        "map_small",
        "map_medium",
        "map_large",
        "mar_1",
        "mar_10",
        "mar_100",
        "mar_small",
        "mar_medium",
        "mar_large",
    ]
    assert numbers["mar_100"] == "0.6667"
    per_class = [
        line.split("\t")[:2] for line in lines[lines.index("label\tap\tap50\ttp\tfp\tfn") + 1 :]
    ]
    assert per_class == [["bus", "0.0000"], ["car", "1.0000"], ["person", "1.0000"]]


def test_evaluate_without_wait_prints_the_run_id_and_usage_errors_exit_2(
    dataset, bob, as_user, capsys
):
    from evaluation.models import EvaluationRun

    evaluation_world(dataset)
    as_user(bob)
    status, out, err = run(
        capsys,
        "evaluate",
        "--dataset",
        "street scenes",
        "--model",
        "yolo",
        "--query",
        'reference_id = "a.jpg"',
    )
    assert status == 0, err
    run_ = EvaluationRun.objects.get()
    assert out.strip() == str(run_.pk) and run_.name.startswith("yolo ")
    assert run_.scope == {"kind": "dataset", "query": 'reference_id = "a.jpg"'}
    status, _, err = run(
        capsys, "evaluate", "--dataset", "street scenes", "--model", "yolo", "--version", "1"
    )
    assert status == 2 and "--version needs --slice" in err
    status, _, err = run(
        capsys, "evaluate", "--dataset", "street scenes", "--model", "yolo", "--options", "{"
    )
    assert status == 2 and "--options is not JSON" in err
    status, _, err = run(
        capsys, "evaluate", "--dataset", "street scenes", "--model", "nope", "--name", "x"
    )
    assert status == 1 and "No model named 'nope'" in err


def test_evaluate_without_a_name_twice_in_the_same_second_numbers_the_second(
    dataset, bob, as_user, capsys
):
    import time_machine

    from evaluation.models import EvaluationRun

    evaluation_world(dataset)
    as_user(bob)
    argv = ("evaluate", "--dataset", "street scenes", "--model", "yolo")
    with time_machine.travel("2026-12-05 12:00:00.100", tick=False):
        first = run(capsys, *argv)
        second = run(capsys, *argv)
    assert first[0] == 0 and second[0] == 0, (first[2], second[2])
    names = list(EvaluationRun.objects.order_by("pk").values_list("name", flat=True))
    assert names == ["yolo 2026-12-05 12:00:00", "yolo 2026-12-05 12:00:00 (2)"]
    # A name the user gives is not renumbered: taken, it is the server's 409.
    status, _, err = run(capsys, *argv, "--name", "yolo 2026-12-05 12:00:00")
    assert status == 1 and "409" in err, err
    assert EvaluationRun.objects.count() == 2


def test_evaluate_takes_a_task_and_prints_classification_metrics(
    dataset, bob, as_user, worker, capsys
):
    from tests.api_helpers import add_items

    def category(label, **extra):
        return {"kind": "category", "label": label, **extra}

    add_items(
        dataset,
        {
            "reference_id": "cat.jpg",
            "annotations": [category("cat")],
            "predictions": [category("cat", model="clf", confidence=0.8)],
        },
        {
            "reference_id": "dog.jpg",
            "annotations": [category("dog")],
            "predictions": [category("cat", model="clf", confidence=0.6)],
        },
    )
    as_user(bob)
    args = ["evaluate", "--dataset", "street scenes", "--model", "clf", "--name", "c1"]
    status, out, err = run(capsys, *args, "--task", "classification", "--wait")
    assert status == 0, err
    lines = out.splitlines()
    assert lines[0].endswith("(c1) of clf: succeeded")
    assert "accuracy\t0.5000" in lines
    assert "cat\t0.5000\t1.0000\t0.6667\t1" in lines
    assert "dog\t0.0000\t0.0000\t0.0000\t1" in lines
    status, _, err = run(capsys, *args[:-1], "c2", "--task", "keypoints")
    assert status == 1 and "task" in err


# ----------------------------------------------------------------------------- test


def test_test_exits_0_when_every_gate_passes_1_when_one_fails_and_2_on_usage_errors(
    dataset, bob, victor, as_user, worker, capsys, client_of
):
    evaluation_world(dataset)
    client = client_of(bob)
    passing = client.scenario_suite_create(dataset.pk, "passing")
    client.scenario_test_create(dataset.pk, passing, "cars", "ap.car", threshold=0.9)
    gates = client.scenario_suite_create(dataset.pk, "gates")
    client.scenario_test_create(dataset.pk, gates, "cars", "ap.car", threshold=0.9)
    client.scenario_test_create(dataset.pk, gates, "buses", "ap.bus", threshold=0.5)
    as_user(bob)

    status, out, err = run(
        capsys, "test", "--dataset", "street scenes", "--suite", "passing", "--model", "yolo"
    )
    assert status == 0, err
    lines = out.splitlines()
    assert lines[0] == "test\tmetric\tvalue\trequired\tresult\tmessage"
    assert lines[1].split("\t")[:5] == ["cars", "ap.car", "1.0000", "0.9000", "PASS"]
    assert lines[-1] == "passed: 1 passed, 0 failed"

    status, out, err = run(
        capsys, "test", "--dataset", "street scenes", "--suite", "gates", "--model", "yolo"
    )
    assert status == 1, err
    rows = {line.split("\t")[0]: line.split("\t")[4] for line in out.splitlines()[1:-1]}
    assert rows == {"cars": "PASS", "buses": "FAIL"}
    assert out.splitlines()[-1] == "FAILED: 1 passed, 1 failed"

    status, _, err = run(capsys, "test", "--dataset", "street scenes", "--suite", "gates")
    assert status == 2 and "--model" in err
    status, _, err = run(
        capsys, "test", "--dataset", "street scenes", "--suite", "nope", "--model", "yolo"
    )
    assert status == 1 and "No scenario suite named 'nope'" in err

    # A viewer may read the history but not run a suite.
    as_user(victor)
    status, _, err = run(
        capsys, "test", "--dataset", "street scenes", "--suite", "gates", "--model", "yolo"
    )
    assert status == 1 and err.startswith("nucleus: error: ")
    history = list(client_of(victor).scenario_evaluations(dataset.pk, "gates"))
    assert [e["passed"] for e in history] == [False]


def test_compare_prints_the_deltas_and_the_items_each_run_gets_right(
    dataset, bob, victor, as_user, capsys
):
    from tests.ui_factories import evaluated, outcome_world

    outcome_world(dataset)
    evaluated(dataset, bob, "base")
    evaluated(dataset, bob, "strict run", confidence_threshold=0.85)
    as_user(victor)
    status, out, err = run(capsys, "compare", "--dataset", "street scenes", "base", "strict run")
    assert status == 0, err
    lines = out.splitlines()
    assert lines[0] == "a: base (yolo)" and lines[1] == "b: strict run (yolo)"
    rows = {line.split("\t")[0]: line.split("\t")[1:] for line in lines}
    assert any("operating points differ" in line for line in err.splitlines())
    # base: 2 TPs (a car, b person), 3 FPs; strict (0.85): a car only, 1 FP (c's 0.9 car).
    assert rows["tp"] == ["2", "1", "-1"]
    assert rows["fp"] == ["3", "1", "-2"]
    assert rows["right_in_a_only"][0] == "0" and rows["right_in_b_only"][0] == "0"
    assert rows["wrong_in_both"] == [
        "3",
        'eval["base"].error >= 1 AND eval["strict run"].error >= 1',
    ]
    status, out, err = run(
        capsys, "compare", "--dataset", "street scenes", "base", "nope", "--json"
    )
    assert status == 1 and "No evaluation run named 'nope'" in err


def test_insights_scan_and_label_errors(dataset, bob, as_user, worker, capsys, client_of):
    from tests.test_insights_label_errors import label_world

    label_world(dataset, clean=20)
    as_user(bob)
    status, _, err = run(
        capsys,
        "evaluate",
        "--dataset",
        "street scenes",
        "--model",
        "yolo",
        "--name",
        "base",
        "--wait",
    )
    assert status == 0, err
    # --no-look: the scan reads no image (its job says so); then a scan with the look.
    status, _, err = run(
        capsys,
        "insights",
        "scan",
        "--dataset",
        "street scenes",
        "--run",
        "base",
        "--no-look",
        "--wait",
    )
    assert status == 0, err
    assert Job.objects.filter(kind="label_errors").latest("pk").params["look"] is False
    status, _, err = run(
        capsys, "insights", "scan", "--dataset", "street scenes", "--run", "base", "--wait"
    )
    assert status == 0, err
    assert Job.objects.filter(kind="label_errors").latest("pk").params["look"] is True
    status, out, err = run(
        capsys,
        "insights",
        "label-errors",
        "--dataset",
        "street scenes",
        "--run",
        "base",
        "--type",
        "wrong_label",
    )
    assert status == 0, err
    lines = [line.split("\t") for line in out.splitlines()]
    assert lines[0][:3] == ["reference_id", "type", "score"]
    assert [(r[0], r[1], r[3], r[4]) for r in lines[1:]] == [("wrong", "wrong_label", "bus", "car")]
    assert "Neighbour disagreement is off" in err
    # No stored images in this dataset: the look signal says so.
    assert "Labels unlike their look: off" in err
    status, _, err = run(
        capsys,
        "insights",
        "label-errors",
        "--dataset",
        "street scenes",
        "--type",
        "bad_box",
        "--slice",
        "moved boxes",
        "--tag",
        "recheck",
    )
    assert status == 0, err
    saved = Slice.objects.get(dataset=dataset, name="moved boxes")
    assert list(saved.items.values_list("reference_id", flat=True)) == ["moved"]
    assert list(
        Item.objects.filter(dataset=dataset, tags__name="recheck").values_list(
            "reference_id", flat=True
        )
    ) == ["moved"]
    status, out, err = run(
        capsys, "insights", "uncertainty-start", "--dataset", "street scenes", "--model", "yolo"
    )
    assert status == 0, err
    client = client_of(bob)
    client.job_wait(dataset.pk, int(out.strip()))
    status, out, err = run(
        capsys,
        "insights",
        "uncertainty",
        "--dataset",
        "street scenes",
        "--model",
        "yolo",
        "--sort",
        "margin",
        "--limit",
        "3",
    )
    assert status == 0, err
    assert len(out.splitlines()) == 4 and out.splitlines()[0].startswith("reference_id\t")
    status, _, err = run(
        capsys, "insights", "label-errors", "--dataset", "street scenes", "--run", "nope"
    )
    assert status == 1 and "no evaluation run named 'nope'" in err


def test_history_prints_an_items_changes_and_reverts_one(dataset, bob, as_user, capsys):
    ids = add_items(dataset, {"reference_id": "a", "annotations": [box(id="a-1")]})
    add_items(dataset, {"reference_id": "a", "annotations": [box(id="a-1", label="bus")]})
    as_user(bob)
    status, out, _ = run(capsys, "history", "item", "--dataset", str(dataset.pk), str(ids["a"]))
    assert status == 0
    lines = out.splitlines()
    assert lines[0].split("\t") == ["id", "at", "user", "source", "action", "annotation", "change"]
    newest = lines[1].split("\t")
    assert newest[2:] == ["-", "admin", "changed", "a-1", "car (box) -> bus (box)"]
    status, out, _ = run(capsys, "history", "revert", "--dataset", str(dataset.pk), newest[0])
    assert status == 0 and "bob\trevert\tchanged\ta-1\tbus (box) -> car (box)" in out
    status, out, _ = run(
        capsys, "history", "list", "--dataset", str(dataset.pk), "--source", "revert", "--json"
    )
    assert status == 0 and [c["reverts"] for c in json.loads(out)] == [int(newest[0])]
    status, _, err = run(capsys, "history", "revert", "--dataset", str(dataset.pk), newest[0])
    assert status == 1 and "changed since" in err  # the revert is now the latest change
