"""Scenario tests: suites of gates on a dataset (a metric of an evaluation over a slice,
compared with a threshold or a baseline run), and the job that evaluates a suite against
a model (writes; reads are evaluation.selectors).

The job runs each test's evaluation in turn, in process (an evaluation run whose job is
recorded but not queued, run with job_run), checkpointing after each: creating a test's
run is one checkpoint, recording its result another, so an interrupted job resumes at the
test it was on and never creates a run twice.
"""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, transaction
from django.utils import timezone

from curation.errors import Conflict, CurationError, field_error, invalid_field
from curation.itemsets import item_set_resolve
from curation.jobs import JobContext, job_create, job_run
from curation.models import Dataset, JobStatus, Model
from evaluation.engine import STAT_NAMES
from evaluation.models import (
    Comparison,
    EvaluationRun,
    ScenarioEvaluation,
    ScenarioResult,
    ScenarioSuite,
    ScenarioTest,
)
from evaluation.options import options_clean
from evaluation.scope import scope_of
from evaluation.services import SCENARIO_JOB, evaluation_create, evaluation_jobs_limit

# Over all classes, at the run's operating point.
OPERATING_METRICS = ("precision", "recall", "f1")
# `<name>.<label>`: a per-class number.
PER_CLASS_METRICS = ("ap", "ap50", "ar", "precision", "recall", "f1")
METRIC_HELP = (
    f"one of {', '.join(STAT_NAMES + OPERATING_METRICS)}, or "
    f"{'/'.join(PER_CLASS_METRICS)}.<label> (e.g. ap.car)"
)


def metric_check(metric: Any) -> str:
    """`metric` if a run's metrics can have it, else a 400 naming `metric`."""
    if isinstance(metric, str):
        if metric in STAT_NAMES or metric in OPERATING_METRICS:
            return metric
        kind, dot, label = metric.partition(".")
        if dot and kind in PER_CLASS_METRICS and label:
            return metric
    raise invalid_field("metric", f"unknown metric {metric!r}: {METRIC_HELP}")


def metric_value(metrics: dict[str, Any], metric: str) -> tuple[float | None, str]:
    """The value of `metric` in a run's metrics, or None and why it has none."""
    if not metrics:
        return None, "the run has no metrics"
    if metric in STAT_NAMES:
        value = metrics.get(metric)
    elif metric in OPERATING_METRICS:
        value = (metrics.get("operating_point") or {}).get(metric)
    else:
        kind, _, label = metric.partition(".")
        found = [c for c in metrics.get("per_class") or [] if c.get("label") == label]
        if not found:
            return None, f"the run has no class {label!r}"
        value = found[0].get(kind)
    if value is None or value == -1:
        return None, f"{metric} is not defined on this run (nothing to average or divide)"
    return float(value), ""


# --------------------------------------------------------------------- suites and tests


def suite_create(*, dataset: Dataset, user: Any, name: str, description: str = "") -> ScenarioSuite:
    name = name.strip()
    if not name:
        raise invalid_field("name", "must not be blank")
    suite = ScenarioSuite(
        dataset=dataset,
        name=name,
        description=description,
        created_by=user if getattr(user, "is_authenticated", False) else None,
    )
    try:
        with transaction.atomic():
            suite.save()
    except IntegrityError:
        message = f"A scenario suite named {name!r} already exists."
        raise Conflict(message, fields=[field_error("name", message)]) from None
    return suite


def suite_delete(*, suite: ScenarioSuite) -> None:
    """Delete a suite, its tests and its history (the evaluation runs stay)."""
    suite.delete()


def suite_update(*, suite: ScenarioSuite, name: str, description: str = "") -> ScenarioSuite:
    """Rename a suite or change its description (a taken name is a 409 naming `name`)."""
    name = name.strip()
    if not name:
        raise invalid_field("name", "must not be blank")
    suite.name, suite.description = name, description
    try:
        with transaction.atomic():
            suite.save(update_fields=["name", "description"])
    except IntegrityError:
        message = f"A scenario suite named {name!r} already exists."
        raise Conflict(message, fields=[field_error("name", message)]) from None
    return suite


def _test_fields(
    suite: ScenarioSuite,
    *,
    name: str,
    metric: Any,
    slice_id: int | None,
    version: int | None,
    query: str,
    threshold: float | None,
    baseline: int | None,
    delta: float,
    options: Any,
) -> dict[str, Any]:
    """A test's fields, checked: a 400 names the bad one."""
    name = name.strip()
    if not name:
        raise invalid_field("name", "must not be blank")
    metric = metric_check(metric)
    query = query.strip()
    found = item_set_resolve(
        dataset=suite.dataset, slice_id=slice_id, version=version, query=query, path=""
    )
    cleaned = options_clean(options)
    run = None
    if baseline is not None:
        if threshold is not None:
            raise invalid_field("threshold", "give a threshold or a baseline, not both")
        run = EvaluationRun.objects.filter(dataset=suite.dataset, pk=baseline).first()
        if run is None:
            raise invalid_field("baseline", f"no evaluation run {baseline} in this dataset")
        if delta < 0:
            raise invalid_field("delta", "must be >= 0")
    elif threshold is None:
        raise invalid_field("threshold", "give a threshold (or a baseline run)")
    return {
        "name": name,
        "slice": found.slice,
        "version": found.version.number if found.version is not None else None,
        "query": query,
        "scope": scope_of(found),
        "metric": metric,
        "comparison": Comparison.BASELINE if run is not None else Comparison.AT_LEAST,
        "threshold": threshold,
        "baseline": run,
        "delta": delta if run is not None else 0.0,
        "options": cleaned,
    }


def _test_save(test: ScenarioTest) -> ScenarioTest:
    try:
        with transaction.atomic():
            test.save()
    except IntegrityError:
        message = f"The suite has a test named {test.name!r} already."
        raise Conflict(message, fields=[field_error("name", message)]) from None
    return test


def test_create(
    *,
    suite: ScenarioSuite,
    name: str,
    metric: Any,
    slice_id: int | None = None,
    version: int | None = None,
    query: str = "",
    threshold: float | None = None,
    baseline: int | None = None,
    delta: float = 0.0,
    options: Any = None,
) -> ScenarioTest:
    """Add a test: `metric` >= `threshold`, or (with `baseline`, a run of the dataset)
    at least the baseline run's value minus `delta`. A 400 names the bad field."""
    fields = _test_fields(
        suite,
        name=name,
        metric=metric,
        slice_id=slice_id,
        version=version,
        query=query,
        threshold=threshold,
        baseline=baseline,
        delta=delta,
        options=options,
    )
    return _test_save(ScenarioTest(suite=suite, **fields))


def test_update(
    *,
    test: ScenarioTest,
    name: str,
    metric: Any,
    slice_id: int | None = None,
    version: int | None = None,
    query: str = "",
    threshold: float | None = None,
    baseline: int | None = None,
    delta: float = 0.0,
    options: Any = None,
) -> ScenarioTest:
    """Change a test (every field, checked as test_create checks them; the options are
    kept when None). Its past results keep what it was then."""
    fields = _test_fields(
        test.suite,
        name=name,
        metric=metric,
        slice_id=slice_id,
        version=version,
        query=query,
        threshold=threshold,
        baseline=baseline,
        delta=delta,
        options=test.options if options is None else options,
    )
    for key, value in fields.items():
        setattr(test, key, value)
    return _test_save(test)


def test_delete(*, test: ScenarioTest) -> None:
    """Delete a test; its past results stay in the suite's history."""
    test.delete()


# ------------------------------------------------------------------ evaluating a suite


@transaction.atomic
def suite_evaluate(*, suite: ScenarioSuite, user: Any, model_id: Any) -> ScenarioEvaluation:
    """Queue a job that evaluates every test of the suite (as it is now) for a model."""
    model = Model.objects.filter(dataset=suite.dataset, pk=model_id).first()
    if model is None:
        raise invalid_field("model", f"no model {model_id} in this dataset")
    tests = list(suite.tests.order_by("id").values_list("id", flat=True))
    if not tests:
        raise invalid_field("suite", "the suite has no tests")
    evaluation_jobs_limit(user)
    evaluation = ScenarioEvaluation.objects.create(
        suite=suite,
        model=model,
        created_by=user if getattr(user, "is_authenticated", False) else None,
    )
    evaluation.job = job_create(
        kind=SCENARIO_JOB,
        dataset=suite.dataset,
        user=user,
        params={"evaluation_id": evaluation.pk, "tests": tests},
        total=len(tests),
    )
    evaluation.save(update_fields=["job"])
    return evaluation


def _run_name(evaluation: ScenarioEvaluation, test: ScenarioTest) -> str:
    return f"{evaluation.suite.name} #{evaluation.pk}: {test.name}"[:200]


def _result(
    evaluation: ScenarioEvaluation, test: ScenarioTest, run: EvaluationRun | None
) -> ScenarioResult:
    """Compare the test's metric on `run` (finished, failed or gone) with what it needs."""
    result = ScenarioResult(
        evaluation=evaluation,
        test=test,
        test_name=test.name,
        metric=test.metric,
        comparison=test.comparison,
        run=run,
        passed=False,
    )
    if run is None:
        result.message = "The evaluation run was deleted before it finished."
        return result
    if run.job is not None and run.job.status != JobStatus.SUCCEEDED:
        result.message = f"The evaluation run {run.job.status}: {run.job.message}".strip()
        return result
    value, why = metric_value(run.metrics or {}, test.metric)
    result.value = value
    if test.comparison == Comparison.BASELINE:
        if test.baseline is None:
            result.message = "The baseline run was deleted."
            return result
        base, base_why = metric_value(test.baseline.metrics or {}, test.metric)
        if base is None:
            result.message = f"Baseline run {test.baseline.pk}: {base_why}"
            return result
        result.required = base - test.delta
    else:
        result.required = test.threshold
    if value is None:
        result.message = why
        return result
    result.passed = result.required is not None and value >= result.required
    return result


def suite_execute(ctx: JobContext) -> dict[str, Any]:
    """The job: for each test in turn, create its evaluation run (checkpoint), run it in
    process, and record its result (checkpoint)."""
    evaluation = (
        ScenarioEvaluation.objects.select_related("suite", "suite__dataset", "model")
        .filter(pk=ctx.params["evaluation_id"])
        .first()
    )
    if evaluation is None:
        return {"evaluation": None, "message": "The suite evaluation was deleted."}
    runs: dict[str, int] = dict(ctx.state.get("runs") or {})
    done: list[int] = list(ctx.state.get("done") or [])
    by_id = {
        t.pk: t
        for t in ScenarioTest.objects.select_related("baseline").filter(
            suite=evaluation.suite, pk__in=ctx.params["tests"]
        )
    }
    for test_id in ctx.params["tests"]:
        test = by_id.get(test_id)
        if test_id in done or test is None:
            continue  # recorded before an interruption, or deleted since the job started
        key = str(test_id)
        if key not in runs:
            # The state holds these very `runs` and `done`: what the block adds to them
            # is what the checkpoint saves, with the run (or the failed result) it wrote.
            with ctx.checkpoint(done=len(done), state={"runs": runs, "done": done}):
                try:
                    if test.slice_id is None and (test.scope or {}).get("kind") != "dataset":
                        # Not the whole dataset instead: the slice was deleted.
                        name = (test.scope or {}).get("slice_name")
                        raise invalid_field("slice", f"the slice {name!r} was deleted")
                    created = evaluation_create(
                        dataset=evaluation.suite.dataset,
                        user=evaluation.created_by,
                        name=_run_name(evaluation, test),
                        model_id=evaluation.model_id,
                        slice_id=test.slice_id,
                        version=test.version,
                        query=test.query,
                        options=test.options,
                        enqueue=False,
                    )
                except CurationError as exc:
                    # The test's slice or version is gone: it fails, saying why.
                    failed = _result(evaluation, test, None)
                    failed.message = f"The evaluation could not start: {exc}"
                    failed.save()
                    done.append(test_id)
                    continue
                runs[key] = created.pk
        run = EvaluationRun.objects.select_related("job").filter(pk=runs[key]).first()
        if run is not None and run.job is not None:
            job_run(job_id=run.job.pk)
            run.refresh_from_db()
            run.job.refresh_from_db()
        with ctx.checkpoint(done=len(done) + 1, state={"runs": runs, "done": [*done, test_id]}):
            ScenarioResult.objects.filter(evaluation=evaluation, test=test).delete()
            _result(evaluation, test, run).save()
        done.append(test_id)
    ScenarioEvaluation.objects.filter(pk=evaluation.pk).update(finished=timezone.now())
    results = ScenarioResult.objects.filter(evaluation=evaluation)
    return {
        "evaluation": evaluation.pk,
        "passed": results.filter(passed=True).count(),
        "failed": results.filter(passed=False).count(),
    }
