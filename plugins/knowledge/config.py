"""The ``knowledge`` plugin's settings, ``[plugins.config.knowledge]`` in ``config.toml``.

Model paths, the Chroma server and the folders the console may read are the operator's
alone; who may add documents and how many results the agent gets are per server.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from core.config import Section, server


class KnowledgeSettings(Section):
    """Settings of the knowledge base."""

    embedding_model: str = Field(
        "", description="A local sentence-transformers folder; empty: bundled all-MiniLM-L6-v2"
    )
    reranker_model: str = Field(
        "", description="A local cross-encoder folder that re-ranks results; empty: off"
    )
    device: str = Field("cpu", pattern=r"^(cpu|cuda(:\d{1,2})?)$")
    threads: int = Field(1, ge=1, le=64, description="CPU threads of the embedding worker")
    chroma_url: str = Field(
        "", description="A Chroma server (http://host:port); empty: embedded under data/"
    )
    max_upload_mb: float = Field(10.0, gt=0, le=1024)
    max_documents: int = Field(500, ge=1, le=100_000, description="Documents per server")
    max_chunks: int = Field(50_000, ge=1, le=10_000_000, description="Chunks per server")
    chunk_tokens: int = Field(200, ge=16, le=8192)
    chunk_overlap: int = Field(30, ge=0, le=4096)
    candidates: int = Field(20, ge=1, le=200, description="Hits per retriever before fusion")
    extract_timeout_s: float = Field(60.0, gt=0, le=3600)
    allowed_paths: list[str] = Field(default_factory=list)
    results: int = server(4, ge=1, le=20, description="Chunks the agent gets per search")
    who_may_add: Literal["admins", "everyone"] = server(
        "admins", description="Who may add and remove documents"
    )

    @field_validator("chroma_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("chroma_url must start with http:// or https://")
        return value

    @field_validator("allowed_paths")
    @classmethod
    def _absolute(cls, value: list[str]) -> list[str]:
        for path in value:
            if not Path(path).is_absolute():
                raise ValueError(f"allowed_paths must be absolute folders: {path!r}")
        return value

    @model_validator(mode="after")
    def _overlap_below_budget(self) -> KnowledgeSettings:
        if self.chunk_overlap >= self.chunk_tokens:
            raise ValueError("chunk_overlap must be below chunk_tokens")
        return self
