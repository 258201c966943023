"""The datasets page in a real browser: create a dataset, start an ingest of a folder and
watch its progress live until it finishes; the jobs page and one job's page; the API
tokens page."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.contrib.auth.models import User

from curation.jobs import job_run
from curation.models import ApiToken, Dataset, Item, Job
from tests.browser.support import log_in, screenshot
from tests.ui_factories import scene


def test_create_a_dataset_ingest_a_folder_and_watch_the_job(
    page: Any, alice: User, import_root: Path
) -> None:
    folder = import_root / "drone"
    folder.mkdir()
    for n in range(6):
        (folder / f"frame-{n}.jpg").write_bytes(scene(n)[0])
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    log_in(page, alice, "alice-password-1")
    page.fill("#dataset-create-form input[name=name]", "drone survey")
    page.click("#dataset-create-form button[type=submit]")
    page.wait_for_url("**ingest=**")
    created = Dataset.objects.get(name="drone survey")
    form = page.locator(f"#ingest-{created.pk} form")
    assert form.is_visible()  # opened for the new dataset
    form.locator("input[name=path]").fill("drone")
    form.locator("button[type=submit]").click()
    page.wait_for_load_state()
    job = Job.objects.get(dataset=created, kind="ingest")
    status = page.locator(f"#job-{job.pk} [data-testid=job-status]")
    assert status.inner_text() == "queued"
    # Nothing done yet, and the bar says so (it once showed 30% next to "0").
    bar = page.locator(f"#job-{job.pk} [data-testid=job-progress]")
    assert bar.get_attribute("aria-valuenow") == "0"
    assert page.locator(f"#job-{job.pk} [data-testid=job-count]").inner_text() == (
        "waiting for a worker"
    )

    job_run(job_id=job.pk)  # the worker's part, here in the test
    page.wait_for_function(
        f"document.querySelector('#job-{job.pk} [data-testid=job-status]')"
        ".textContent === 'succeeded'"
    )
    assert page.locator(f"#job-{job.pk}").get_by_text("1 item error").is_visible()
    assert Item.objects.filter(dataset=created).count() == 6
    count = page.locator(f"#dataset-{created.pk} td.num")
    page.wait_for_function(
        f"document.querySelector('#dataset-{created.pk} td.num').textContent === '6'"
    )
    assert count.inner_text() == "6"  # the list refreshed itself when the job finished
    screenshot(page, "datasets-ingest")

    page.goto("/jobs/")
    page.locator(f"#job-{job.pk} summary").click()
    assert "broken.jpg" in page.locator(f"#job-{job.pk} .job-errors ol").inner_text()
    screenshot(page, "jobs")

    page.click(f"#job-{job.pk} [data-testid=job-link]")
    page.wait_for_url(f"**/datasets/{created.pk}/jobs/{job.pk}")
    assert page.locator("[data-testid=job-page-status]").inner_text() == "succeeded"
    result = page.locator("[data-testid=job-result]").inner_text()
    assert "created\n6" in result, result
    assert "drone" in page.locator("[data-testid=job-parameters]").inner_text()
    assert "broken.jpg" in page.locator(f"#job-{job.pk} .job-errors ol").inner_text()
    screenshot(page, "job")
    page.click("[data-testid=job-made-dataset]")
    page.wait_for_url(f"**/datasets/{created.pk}/")


def test_an_ingest_path_outside_the_import_roots_is_refused_on_the_form(
    page: Any, bob: User, dataset: Dataset
) -> None:
    log_in(page, bob, "bob-password-1")
    page.click(f"[data-ingest-toggle='{dataset.pk}']")
    form = page.locator(f"#ingest-{dataset.pk} form")
    form.locator("input[name=path]").fill("/etc")
    form.locator("button[type=submit]").click()
    page.wait_for_load_state()
    assert (
        "is outside the import roots"
        in page.locator(f"#ingest-{dataset.pk} .form-error").inner_text()
    )
    assert not Job.objects.exists()


def test_create_and_revoke_an_api_token(page: Any, alice: User) -> None:
    log_in(page, alice, "alice-password-1")
    page.click("text=API tokens")
    page.fill("input[name=name]", "training pipeline")
    page.click("text=Create token")
    page.wait_for_load_state()
    secret = page.locator("[data-testid=token-secret]").inner_text()
    assert secret.startswith(ApiToken.objects.get(user=alice).prefix)
    screenshot(page, "tokens")

    page.on("dialog", lambda dialog: dialog.accept())
    page.click("text=Revoke")
    page.wait_for_load_state()
    assert page.locator(".message-success").is_visible()
    assert not ApiToken.objects.exists()
