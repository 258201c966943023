from __future__ import annotations

from django.apps import AppConfig


class InsightsConfig(AppConfig):
    name = "insights"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # The dataset header's "Insights" tab (insights/ui.py) and the page's first section.
        # Each signal of the app registers its own section (insights/sections.py), so the
        # page grows by registration, not by editing one view. curation never imports this app.
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

    def _label_errors_ready(self) -> None:
        # Label-error candidates and model uncertainty: their jobs, the query fields
        # label_error[.<type>] and uncertainty[<model>].<field>, the demo's scan after the
        # demo's evaluation run, and the page's section (docs/insights.md).
        from curation.query import register_field
        from curation.signals import job_succeeded
        from insights import runners  # noqa: F401
        from insights.label_error_scan import demo_label_errors
        from insights.label_error_selectors import label_errors_context, uncertainty_context
        from insights.query import LABEL_ERROR, UNCERTAINTY, label_error_field, uncertainty_field
        from insights.sections import Section, section_register

        job_succeeded.connect(demo_label_errors, dispatch_uid="insights.demo_label_errors")
        register_field(LABEL_ERROR, label_error_field)
        register_field(UNCERTAINTY, uncertainty_field, bracket=True)
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
