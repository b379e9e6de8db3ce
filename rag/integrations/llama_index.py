"""The hybrid retriever (dense + BM25 + title match, fused) as a LlamaIndex `BaseRetriever`, so it plugs into
LlamaIndex query engines, routers and fusion retrievers.

Each node is the best-matching passage of one paper (a window of whole sentences of its abstract), with the
paper id, title and url in its metadata and the fused retrieval score as the node's score.
"""
from __future__ import annotations

from llama_index.core.retrievers import BaseRetriever
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

from ..types import Filters, Hit


class PapersRetriever(BaseRetriever):
    """`PapersRetriever(Assistant(load_settings()), k=5)`; `filters` restrict by the records' metadata."""

    def __init__(self, assistant, *, k: int | None = None, filters: Filters = Filters()):
        super().__init__()
        self._assistant = assistant
        self._k = k
        self._filters = filters

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        hits = self._assistant.search(query_bundle.query_str, self._k, filters=self._filters)
        return [NodeWithScore(node=_node(hit), score=hit.score) for hit in hits]


def _node(hit: Hit) -> TextNode:
    start = hit.paper.abstract.find(hit.snippet) if hit.snippet else -1
    return TextNode(
        id_=f"{hit.paper_id}@{max(start, 0)}",
        text=hit.snippet or hit.paper.abstract,
        metadata={"paper_id": hit.paper_id, "title": hit.paper.title, "url": hit.paper.url,
                  "rank": hit.rank, "score": round(hit.score, 6)},
        excluded_embed_metadata_keys=["paper_id", "url", "rank", "score"],
        excluded_llm_metadata_keys=["url", "rank", "score"],
        start_char_idx=start if start >= 0 else None,
        end_char_idx=start + len(hit.snippet) if start >= 0 else None,
    )
