"""Run a job worker. Workers can run on many machines against the same database."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand

logger = logging.getLogger("nucleus.worker")


async def _retry_stalled(app: Any, seconds: int) -> None:
    """Requeue jobs whose worker stopped sending heartbeats (killed, machine lost)."""
    while True:
        try:
            for job in await app.job_manager.get_stalled_jobs(seconds_since_heartbeat=seconds):
                logger.warning("requeueing job %s: its worker stopped responding", job.id)
                await app.job_manager.retry_job(job)
        except Exception:
            logger.exception("could not check for stalled jobs")
        await asyncio.sleep(max(1.0, seconds / 3))


async def _run(
    app: Any, concurrency: int, seconds: int, wait: bool, queues: list[str] | None
) -> None:
    async with app.open_async():
        reaper = asyncio.create_task(_retry_stalled(app, seconds))
        try:
            await app.run_worker_async(
                queues=queues,
                concurrency=concurrency,
                wait=wait,
                update_heartbeat_interval=max(0.5, seconds / 4),
                stalled_worker_timeout=seconds,
                install_signal_handlers=True,
            )
        finally:
            reaper.cancel()


class Command(BaseCommand):
    help = "Run a background job worker (ingest, embeddings, exports)."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--concurrency", type=int, default=1)
        parser.add_argument("--once", action="store_true", help="Stop when the queue is empty.")
        parser.add_argument(
            "--queue",
            action="append",
            dest="queues",
            metavar="NAME",
            help="Run only jobs of this queue (repeatable; default: every queue). Queues: "
            "'default' (ingest, export) and 'embed' (embeddings, duplicates).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        from procrastinate.contrib.django import app

        from curation.signals import worker_started

        seconds = settings.NUCLEUS_STALLED_JOB_SECONDS
        worker_started.send(sender=self.__class__, queues=options["queues"], once=options["once"])
        with app.replace_connector(app.connector.get_worker_connector()) as worker_app:  # type: ignore[attr-defined]
            asyncio.run(
                _run(
                    worker_app,
                    options["concurrency"],
                    seconds,
                    not options["once"],
                    options["queues"],
                )
            )
