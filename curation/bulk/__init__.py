"""Bulk item records: validation (validate) and COPY-based idempotent upserts (write)."""
