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
