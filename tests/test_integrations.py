"""The MCP server through the SDK's own stdio client, and the retriever inside a real LlamaIndex query engine."""
from __future__ import annotations

import sys

import anyio
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from conftest import words

MULTIGRID = "A Multigrid Method for Efficiently Training Video Models"
QUESTION = "By how much does the multigrid schedule speed up SlowFast training?"


def test_mcp_server_over_stdio(small_assistant, papers_by_title):
    params = StdioServerParameters(command=sys.executable, args=[
        "-m", "rag.cli", "--index-dir", str(small_assistant.settings.index.dir), "mcp"])

    async def session():
        async with Client(params, read_timeout_seconds=120) as client:
            tools = await client.list_tools()
            answer = await client.call_tool("ask", {"question": QUESTION})
            hits = await client.call_tool("search_papers", {"query": "What is DEUP?", "k": 2})
            paper_id = answer.structured_content["citations"][0]["paper_id"]
            paper = await client.call_tool("get_paper", {"paper_id": paper_id})
            missing = await client.call_tool("get_paper", {"paper_id": "no-such-paper"})
            return tools, answer, hits, paper, missing

    tools, answer, hits, paper, missing = anyio.run(session)
    assert {t.name for t in tools.tools} == {"search_papers", "ask", "get_paper"}
    ask_tool = next(t for t in tools.tools if t.name == "ask")
    assert "citations" in ask_tool.output_schema["properties"]
    data = answer.structured_content
    assert not answer.is_error and "4.5x" in data["text"] and data["abstained"] is False
    citation = data["citations"][0]
    assert citation["title"] == MULTIGRID and words(citation["quote"]) in words(papers_by_title[MULTIGRID].abstract)
    assert [h["title"] for h in hits.structured_content["hits"]][0] == "DEUP: Direct Epistemic Uncertainty Prediction"
    assert len(hits.structured_content["hits"]) == 2
    assert paper.structured_content["abstract"] == papers_by_title[MULTIGRID].abstract
    assert missing.is_error and "no-such-paper" in missing.content[0].text


def test_llama_index_query_engine_retrieves_the_multigrid_paper(small_assistant):
    from llama_index.core.llms import MockLLM
    from llama_index.core.query_engine import RetrieverQueryEngine
    from llama_index.core.response_synthesizers.no_text import NoText

    from rag.integrations.llama_index import PapersRetriever

    retriever = PapersRetriever(small_assistant, k=3)
    nodes = retriever.retrieve("training video models faster with variable mini-batch shapes")
    assert len(nodes) == 3 and nodes[0].node.metadata["title"] == MULTIGRID
    assert nodes[0].score >= nodes[1].score >= nodes[2].score
    paper = small_assistant.paper(nodes[0].node.metadata["paper_id"])
    node = nodes[0].node
    assert paper.abstract[node.start_char_idx:node.end_char_idx] == node.text
    # NoText: the engine only retrieves, so the placeholder LLM (llama-index's own) is never called; it is passed
    # so llama-index does not resolve its global default (OpenAI).
    engine = RetrieverQueryEngine(retriever, NoText(llm=MockLLM()))
    response = engine.query(QUESTION)
    assert response.source_nodes[0].node.metadata["title"] == MULTIGRID
