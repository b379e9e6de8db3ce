"""`rag mcp`: the assistant as an MCP server on stdio, for LLM desktop apps and coding agents.

Tools: `search_papers` (ranked papers), `ask` (a verified answer with its citations as structured content) and
`get_paper`. stdout belongs to the protocol: nothing else may print there, so the index must already exist
(`rag ingest`) and all logging goes to stderr.
"""
from __future__ import annotations

import threading

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel, Field

from .config import Settings
from .errors import RagError


class CitationOut(BaseModel):
    number: int = Field(description="The [n] marker in the answer text.")
    paper_id: str
    title: str
    quote: str = Field(description="Verbatim from the paper's abstract.")


class HitOut(BaseModel):
    paper_id: str
    title: str
    score: float
    snippet: str = Field(description="The abstract passage that matched best.")


class AskOut(BaseModel):
    text: str = Field(description="The answer with [n] citation markers, or the refusal phrase.")
    abstained: bool
    abstain_reason: str | None = None
    citations: list[CitationOut]
    sources: list[HitOut] = Field(description="The papers retrieved for the question, best first.")


class SearchOut(BaseModel):
    hits: list[HitOut]


class PaperOut(BaseModel):
    id: str
    title: str
    abstract: str
    url: str
    authors: list[str]
    published: str
    categories: list[str]


def build(settings: Settings) -> MCPServer:
    """The MCP server over one lazily opened `Assistant` (opened on the first tool call, not at start, so the
    client's handshake is quick); tool calls run on worker threads and take turns on it."""
    from .assistant import Assistant

    assistant = Assistant(settings, build_if_missing=False)
    lock = threading.Lock()
    server = MCPServer("rag-papers", instructions="Search and question machine-learning paper abstracts; "
                       "answers cite the papers they come from with verbatim quotes, or say the corpus does not "
                       "answer.")

    def call(fn):
        with lock:
            try:
                return fn()
            except RagError as exc:
                raise ToolError(str(exc)) from None

    @server.tool()
    def search_papers(query: str, k: int = 5) -> SearchOut:
        """Rank the indexed papers for a query (hybrid dense + BM25 + title match)."""
        hits = call(lambda: assistant.search(query, max(1, min(k, 50))))
        return SearchOut(hits=[HitOut(**h.to_dict()) for h in hits])

    @server.tool()
    def ask(question: str) -> AskOut:
        """Answer a question from the paper abstracts, citing papers with verbatim quotes, or abstain."""
        answer = call(lambda: assistant.ask(question))
        data = answer.to_dict()
        return AskOut(text=answer.text, abstained=answer.abstained, abstain_reason=data["abstain_reason"],
                      citations=[CitationOut(**c) for c in data["citations"]],
                      sources=[HitOut(**h.to_dict()) for h in answer.sources])

    @server.tool()
    def get_paper(paper_id: str) -> PaperOut:
        """One indexed paper by id: title, abstract, url and whatever metadata its record carried."""
        paper = call(lambda: assistant.paper(paper_id))
        if paper is None:
            raise ToolError(f"no paper with id {paper_id!r} in the index")
        return PaperOut(**paper.to_dict())

    return server


def run(settings: Settings) -> None:
    build(settings).run("stdio")
