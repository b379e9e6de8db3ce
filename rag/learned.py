"""Small learned decisions: linear models over named features, trained offline on the eval set's dev split
(evals/train.py, minutes on 2 cores, never in CI) and shipped as JSON beside this module (rag/models/).

At run time a model is a dot product: no training library is imported. Each file records the features it was
trained on, so a file that does not match the code's features is an error, not a silent misprediction.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from .errors import ConfigError

MODELS_DIR = Path(__file__).resolve().parent / "models"


@dataclass(frozen=True)
class LinearModel:
    """Multinomial (or binary, one row) logistic regression: p = softmax(W x + b)."""

    name: str
    features: tuple[str, ...]
    classes: tuple[str, ...]
    weights: np.ndarray      # (classes, features), or (1, features) for a binary model
    bias: np.ndarray         # (classes,) or (1,)
    mean: np.ndarray         # feature standardisation learned with the weights
    scale: np.ndarray
    threshold: float | None = None
    info: dict | None = None

    def logits(self, x: np.ndarray) -> np.ndarray:
        z = (np.atleast_2d(x) - self.mean) / self.scale
        return z @ self.weights.T + self.bias

    def proba(self, x: np.ndarray) -> np.ndarray:
        """Class probabilities, one row per input row (a binary model gives P(positive) as one column)."""
        logits = self.logits(x)
        if logits.shape[1] == 1:
            return 1.0 / (1.0 + np.exp(-logits))
        logits = logits - logits.max(axis=1, keepdims=True)
        e = np.exp(logits)
        return e / e.sum(axis=1, keepdims=True)

    def to_json(self) -> dict:
        return {"name": self.name, "features": list(self.features), "classes": list(self.classes),
                "weights": self.weights.round(6).tolist(), "bias": self.bias.round(6).tolist(),
                "mean": self.mean.tolist(), "scale": self.scale.tolist(),
                "threshold": self.threshold, "info": self.info or {}}

    @classmethod
    def from_json(cls, data: dict) -> "LinearModel":
        return cls(name=data["name"], features=tuple(data["features"]), classes=tuple(data["classes"]),
                   weights=np.array(data["weights"], dtype=np.float64), bias=np.array(data["bias"], dtype=np.float64),
                   mean=np.array(data["mean"], dtype=np.float64), scale=np.array(data["scale"], dtype=np.float64),
                   threshold=data.get("threshold"), info=data.get("info") or {})


@lru_cache(maxsize=16)
def load_model(name: str, features: tuple[str, ...] | None = None) -> LinearModel:
    """The shipped model `name`; `features`, when given, must be exactly what it was trained on."""
    path = MODELS_DIR / f"{name}.json"
    try:
        model = LinearModel.from_json(json.loads(path.read_text()))
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigError(f"learned model {path} cannot be read ({exc}); retrain it with evals/train.py") from None
    if features is not None and model.features != features:
        raise ConfigError(f"learned model {path} was trained on other features than this code computes; "
                          "retrain it with evals/train.py")
    return model


def save_model(model: LinearModel, directory: Path = MODELS_DIR) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{model.name}.json"
    path.write_text(json.dumps(model.to_json(), indent=1) + "\n")
    return path
