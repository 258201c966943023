"""`{% extra_dataset_tabs dataset.pk as tabs %}`: the header tabs other apps registered
(curation.ui.extensions.dataset_tab_register), as (label, url, tab) for this dataset."""

from __future__ import annotations

from django import template
from django.urls import reverse

from curation.ui.extensions import dataset_tabs

register = template.Library()


@register.simple_tag
def extra_dataset_tabs(dataset_id: int) -> list[tuple[str, str, str]]:
    return [(t.label, reverse(t.url_name, args=[dataset_id]), t.tab) for t in dataset_tabs()]
