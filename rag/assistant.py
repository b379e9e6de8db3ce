"""The Python API: one object that ingests, searches, answers and chats. The CLI and REPL only adapt it."""
from __future__ import annotations

import threading
from pathlib import Path
from typing import Callable, Iterable

from .config import Settings, load_settings
from .errors import IndexMissingError
from .types import Answer, Filters, Hit


class Assistant:
    """`Assistant()` opens the default index (building it from the bundled corpus if missing).

    Settings are passed explicitly; nothing is read from globals after construction.
    """

    def __init__(self, settings: Settings | None = None, *, build_if_missing: bool = True, llm=None):
        self.settings = settings or load_settings()
        self._build_if_missing = build_if_missing
        self._llm_override = llm
        self._index = None
        self._retriever = None
        self._chain = None
        self._embedder = None
        self._open_lock = threading.Lock()

    # ---- components, opened on first use --------------------------------------------------------
    @property
    def embedder(self):
        if self._embedder is None:
            from .embeddings import Embedder

            self._embedder = Embedder(self.settings.embedding)
        return self._embedder

    @property
    def index(self):
        with self._open_lock:
            if self._index is None:
                from .index import Index

                try:
                    self._index = Index.open(self.settings)
                except IndexMissingError:
                    if not self._build_if_missing:
                        raise
                    self.ingest(self.settings.corpus.default_paths)
                    self._index = Index.open(self.settings)
            return self._index

    @property
    def retriever(self):
        if self._retriever is None:
            from .retrieval import Retriever

            index = self.index
            self._retriever = Retriever(index, self.embedder, self.settings.retrieval)
        return self._retriever

    @property
    def chain(self):
        if self._chain is None:
            from .answer import AnswerChain

            self._chain = AnswerChain(self.retriever, self.embedder, self.settings, llm=self._llm_override)
        return self._chain

    def warm(self) -> None:
        """Open the index, models and chain now (a server does this before taking requests, so worker threads
        never race to open them)."""
        _ = self.chain, self.reader.read("warm up")
        self.search("warm up", 1)  # BM25 arrays and the vector reader open on first search

    def close(self) -> None:
        if self._index is not None:
            self._index.close()
        self._index = self._retriever = self._chain = None

    def __enter__(self) -> "Assistant":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- operations -----------------------------------------------------------------------------
    def ingest(self, paths: Iterable[Path] | None = None, *, rebuild: bool = False,
               progress: Callable[[int, int], None] | None = None):
        """Read corpus files and add new/changed papers; returns an `IngestReport`."""
        from .corpus import read_corpus
        from .index import Index

        self.close()
        read = read_corpus(list(paths) if paths else list(self.settings.corpus.default_paths))
        with Index.open_for_write(self.settings, rebuild=rebuild) as index:
            report = index.ingest(read.papers, embed=self.embedder.encode, model=self.settings.embedding.model,
                                  embed_digest=self.embedder.model_digest, progress=progress,
                                  batch_papers=self.settings.index.ingest_batch)
        report.names_rebuilt = index.names_rebuilt
        report.skipped = sum(1 for i in read.issues if i.skipped)
        report.listings = read.listings
        report.issues = [str(i) for i in read.issues]
        return report

    def search(self, question: str, k: int | None = None, *, filters: Filters = Filters()) -> list[Hit]:
        """Ranked papers; `filters` restrict by metadata (NoMatchingPapersError when no paper passes)."""
        from .query import clean_question

        question, _ = clean_question(question, self.settings.answer.max_question_tokens)
        return self.retriever.search(self.reader.as_written(question), k, filters=filters)

    def ask(self, question: str, *, k: int | None = None, history: list[dict] | None = None,
            on_token: Callable[[str], None] | None = None, filters: Filters = Filters()) -> Answer:
        """Answer with verified citations, or abstain. `history` holds earlier chat turns for follow-ups;
        `filters` restrict which papers may answer (dates, category, author)."""
        return self.chat(history=history, filters=filters).ask(question, k=k, on_token=on_token)

    def chat(self, history: list[dict] | None = None, filters: Filters = Filters()):
        from .chat import Conversation

        return Conversation(self.chain, self.reader, history=history, filters=filters)

    @property
    def reader(self):
        """Reads questions into Query objects (embedding, intent, answer type, follow-up)."""
        from .query import QuestionReader

        return QuestionReader(self.embedder, self.settings.answer.max_question_tokens,
                              domain_gate=self.settings.answer.domain_gate, names=self.index.store.names)

    def paper(self, paper_id: str):
        """A stored paper by id, or None."""
        return self.index.store.get([paper_id]).get(paper_id)

    def describe(self) -> dict:
        index = self.index
        return {
            "index_dir": str(index.dir),
            "papers": index.manifest.get("papers"),
            "chunks": index.manifest.get("chunks"),
            "embedding_model": index.manifest.get("embedding_model"),
            "embedding_backend": index.manifest.get("embedding_backend", "torch"),
            "sentence_splitter": index.manifest.get("splitter", 1),
            "terms": index.manifest.get("terms", 1),
            "names": index.manifest.get("names", 1),
            "backend": self.chain.backend_name,
        }
