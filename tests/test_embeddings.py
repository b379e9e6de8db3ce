"""The embedding backends: the ONNX export reproduces the sentence-transformers model, int8 stays close to it,
and an index is never queried with weights other than those that built it."""
from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import make_settings
from rag.assistant import Assistant
from rag.config import load_settings
from rag.embeddings import Embedder
from rag.errors import IndexMismatchError


@pytest.fixture(scope="module")
def texts(papers_by_title):
    papers = list(papers_by_title.values())[:40]
    return [p.title for p in papers] + [f"{p.title}\n{p.abstract}" for p in papers] + ["x", "What is DEUP?"]


def _encode(backend: str, texts: list[str]) -> np.ndarray:
    return Embedder(load_settings(embedding={"backend": backend}).embedding).encode(texts)


def test_onnx_export_matches_sentence_transformers(texts):
    reference = _encode("torch", texts)
    exported = _encode("onnx", texts)
    assert exported.shape == reference.shape == (len(texts), 384)
    assert np.allclose(np.linalg.norm(exported, axis=1), 1.0, atol=1e-5)
    assert (exported * reference).sum(1).min() > 0.9999
    int8 = _encode("onnx-int8", texts)
    cosine = (int8 * reference).sum(1)
    assert cosine.mean() > 0.99 and cosine.min() > 0.97  # per-tensor quantization gave 0.94 / 0.89


def test_index_refuses_other_weights_and_other_backend(small_corpus, tmp_path):
    settings = make_settings(tmp_path / "index")
    with Assistant(settings, build_if_missing=False) as assistant:
        assistant.ingest([small_corpus])
        digest = assistant.embedder.model_digest()
    manifest_path = tmp_path / "index" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    assert manifest["embedding_backend"] == "onnx-int8" and manifest["embedding_digest"] == digest

    with pytest.raises(IndexMismatchError, match="'torch'"):
        Assistant(make_settings(tmp_path / "index", embedding={"backend": "torch"}), build_if_missing=False).index

    manifest["embedding_digest"] = "0" * 64  # as if a different export had built it
    manifest_path.write_text(json.dumps(manifest))
    with Assistant(settings, build_if_missing=False) as assistant:
        with pytest.raises(IndexMismatchError, match="model weights 000000000000"):
            assistant.search("What is DEUP?")
    extra = tmp_path / "new.jsonl"  # adding vectors from other weights to this index is refused too
    extra.write_text(json.dumps({"title": "A New Paper About Widgets", "abstract": "We study widgets at scale."}) + "\n")
    with Assistant(settings, build_if_missing=False) as assistant:
        with pytest.raises(IndexMismatchError, match="model weights"):
            assistant.ingest([extra])
    after = json.loads(manifest_path.read_text())
    assert after["state"] == "complete" and after["embedding_digest"] == "0" * 64  # refused before any write
