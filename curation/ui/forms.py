"""Forms of the UI. They check the shape of the input; the services check the rest and their
errors are shown on the fields they name (curation.ui.http.form_errors_from)."""

from __future__ import annotations

from typing import Any

from django import forms

from curation.ingest.services import SOURCE_TYPES

MAX_SELECTION_IDS = 10_000


class DatasetCreateForm(forms.Form):
    name = forms.CharField(max_length=200)
    description = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))


class IngestForm(forms.Form):
    """Start an ingest: a folder under an import root, or an uploaded manifest or COCO file."""

    type = forms.ChoiceField(choices=[(t, t) for t in SOURCE_TYPES])
    path = forms.CharField(required=False, max_length=4096)
    file = forms.FileField(required=False)
    images_root = forms.CharField(required=False, max_length=4096)
    labels_from_folders = forms.BooleanField(required=False)

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        kind, path, upload = data.get("type"), data.get("path"), data.get("file")
        if kind == "folder":
            if not path:
                self.add_error("path", "Name a folder under an import root.")
            if upload:
                self.add_error("file", "A folder ingest takes a path, not a file.")
        elif kind in ("manifest", "coco") and bool(path) == bool(upload):
            self.add_error(
                "file", "Upload a file or give a path under an import root (one of them)."
            )
        return data

    def source(self) -> dict[str, Any]:
        """The ingest source for curation.ingest, without the uploaded file."""
        data = self.cleaned_data
        source: dict[str, Any] = {"type": data["type"]}
        if data["type"] == "folder":
            source["path"] = data["path"]
            source["labels_from_folders"] = data["labels_from_folders"]
            return source
        if data["path"]:
            source["path"] = data["path"]
        if data["images_root"]:
            source["images_root"] = data["images_root"]
        return source


class TokenCreateForm(forms.Form):
    name = forms.CharField(max_length=200)


class SelectedItemsForm(forms.Form):
    """The grid's selection: explicit ids, or every item the view's filters match."""

    scope = forms.ChoiceField(choices=[("ids", "ids"), ("view", "view")], required=False)
    ids = forms.CharField(required=False)
    view = forms.CharField(required=False, max_length=20_000)

    def clean_ids(self) -> list[int]:
        raw = [
            part for part in self.cleaned_data.get("ids", "").replace(" ", "").split(",") if part
        ]
        if len(raw) > MAX_SELECTION_IDS:
            raise forms.ValidationError(
                f"At most {MAX_SELECTION_IDS} items can be selected one by one; "
                "use “select all matching” for more."
            )
        try:
            return list(dict.fromkeys(int(part) for part in raw))
        except ValueError:
            raise forms.ValidationError("Item ids must be whole numbers.") from None

    def clean(self) -> dict[str, Any]:
        super().clean()
        data = self.cleaned_data
        if (data.get("scope") or "ids") == "ids" and not data.get("ids"):
            self.add_error("ids", "Select at least one item.")
        return data


class SelectionForm(SelectedItemsForm):
    """An action of curation's on selected items (slices, tags)."""

    ACTIONS = ("slice_add", "slice_create", "slice_remove", "tag", "untag")

    action = forms.ChoiceField(choices=[(a, a) for a in ACTIONS])
    slice = forms.IntegerField(required=False, min_value=1)
    name = forms.CharField(required=False, max_length=200)

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        action = data.get("action")
        if action in ("slice_add", "slice_remove") and not data.get("slice"):
            self.add_error("slice", "Choose a slice.")
        if action in ("slice_create", "tag", "untag") and not (data.get("name") or "").strip():
            self.add_error("name", "Give a name.")
        return data
