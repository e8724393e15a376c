"""Retrieval engine (chromadb store, embeddings, chunking, ingestion) — no chat code.

Empty until the knowledge-base issue; see ARCHITECTURE.md.
"""
