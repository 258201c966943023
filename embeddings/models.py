"""Embedding models and vectors (filled in by the embeddings work)."""
