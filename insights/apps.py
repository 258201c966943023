from __future__ import annotations

from django.apps import AppConfig


class InsightsConfig(AppConfig):
    name = "insights"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # The dataset header's "Insights" tab (insights/ui.py) and its sections, in the
        # order the page shows them. Each signal registers its own section
        # (insights/sections.py), its jobs and its query fields, so the page grows by
        # registration, not by editing one view. curation never imports this app.
        from curation.ui.extensions import DatasetTab, dataset_tab_register
        from insights.sections import Section, section_register
        from insights.selectors import failures_context

        dataset_tab_register(DatasetTab("Insights", "insights-ui:page", "insights"))
        section_register(
            Section(
                key="failures",
                title="Model failures",
                template="insights/_failures.html",
                context=failures_context,
            )
        )
        self._label_errors_ready()
        self._scores_ready()
        # Every score as a histogram facet of the grid (curation.score_facets).
        from insights.score_facets import register_score_facets

        register_score_facets()

    def _label_errors_ready(self) -> None:
        # Label-error candidates and model uncertainty: their jobs, the query fields
        # label_error[.<type>] and uncertainty[<model>].<field> (each also a sort key), the
        # demo's scan after the demo's evaluation run, and the page's sections.
        from curation.query import register_field
        from curation.signals import job_succeeded
        from insights import runners  # noqa: F401
        from insights.label_error_scan import demo_label_errors
        from insights.label_error_selectors import label_errors_context, uncertainty_context
        from insights.query import (
            LABEL_ERROR,
            UNCERTAINTY,
            label_error_field,
            label_error_value,
            uncertainty_field,
            uncertainty_value,
        )
        from insights.sections import Section, section_register

        job_succeeded.connect(demo_label_errors, dispatch_uid="insights.demo_label_errors")
        register_field(LABEL_ERROR, label_error_field, value=label_error_value)
        register_field(UNCERTAINTY, uncertainty_field, bracket=True, value=uncertainty_value)
        section_register(
            Section(
                key="label-errors",
                title="Label-error candidates",
                template="insights/_label_errors.html",
                context=label_errors_context,
            )
        )
        section_register(
            Section(
                key="uncertainty",
                title="Model uncertainty",
                template="insights/_uncertainty.html",
                context=uncertainty_context,
            )
        )

    def _scores_ready(self) -> None:
        # Uniqueness, representativeness, outliers (uniqueness > 0.8, outlier >= 0.9, each
        # also a sort key: sort=uniqueness&order=desc) and leaks between splits.
        from curation.query import register_field
        from insights import jobs  # noqa: F401  (registers the scores and leaks runners)
        from insights.query import FIELDS, score_field, score_value
        from insights.sections import Section, section_register
        from insights.selectors import leaks_context, scores_context

        for name in FIELDS:
            register_field(
                name, score_field, bracket=True, bracket_optional=True, value=score_value
            )
        section_register(
            Section(
                key="scores",
                title="Uniqueness, representativeness, outliers",
                template="insights/_scores.html",
                context=scores_context,
            )
        )
        section_register(
            Section(
                key="leaks",
                title="Leaks between splits",
                template="insights/_leaks.html",
                context=leaks_context,
            )
        )
