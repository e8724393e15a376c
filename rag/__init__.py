"""Retrieval engine for the knowledge base — no chat code, no platform SDK.

``rag.extract`` turns an uploaded file into clean text sections; ``rag.chunking`` cuts
them into chunks that fit an embedding model. Planned: the store, embeddings, ingestion
(see ARCHITECTURE.md).
"""
