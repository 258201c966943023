from __future__ import annotations

from django.apps import AppConfig


class InsightsConfig(AppConfig):
    name = "insights"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # The dataset header's "Insights" tab (insights/ui.py) and the page's first section.
        # Each signal of the app registers its own section (insights/sections.py), so the
        # page grows by registration, not by editing one view. curation never imports this app.
        from curation.query import register_field
        from curation.ui.extensions import DatasetTab, dataset_tab_register
        from insights import jobs  # noqa: F401  (registers the scores and leaks runners)
        from insights.query import FIELDS, score_field, score_value
        from insights.sections import Section, section_register
        from insights.selectors import failures_context, leaks_context, scores_context

        dataset_tab_register(DatasetTab("Insights", "insights-ui:page", "insights"))
        section_register(
            Section(
                key="failures",
                title="Model failures",
                template="insights/_failures.html",
                context=failures_context,
            )
        )
        # uniqueness > 0.8, representativeness["clip"] < 0.2, outlier >= 0.9 (insights/query.py),
        # each also a sort key of the grid and the item list (sort=uniqueness&order=desc).
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
