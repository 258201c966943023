"""Exports for pipelines: native JSONL, COCO detection JSON and YOLO, streamed.

- sources: what an export reads (a dataset, a slice, a frozen version) and its items in
  keyset batches, fetched in parallel
- jsonl, coco (with its RLE arithmetic), yolo: one writer per format, each a stream of
  byte chunks
- formats: the formats, the options that choose one, and the writer each runs
- jobs: the "export" job, which stores the file for a later download

The media URLs in an export are made by curation.storage.MediaUrls. docs/export.md
describes the formats.
"""
