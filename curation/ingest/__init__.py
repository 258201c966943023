"""Ingest: images and their annotations from a folder, a JSONL manifest or a COCO file.

`services.ingest_enqueue` checks a source description and starts an "ingest" job; the
job's runner (`jobs.ingest_run`) reads the source (`sources`) in order, in chunks of
NUCLEUS_INGEST_CHUNK records. For each chunk it reads and stores the media (outside any
transaction), validates the rows, then writes them and the job's progress in one
checkpoint, so an interrupted job resumes at the first chunk it had not committed.
Problems with one record (a corrupt image, a refused URL, a box outside its image, a bad
JSON line) become per-item errors on the job; the rest of the chunk lands. Every write is
an upsert, so re-running an ingest changes nothing.

See docs/ingest.md for the three formats.
"""
