"""Where the files the package needs live: prompts, the bundled corpus, the default index.

From a checkout of the repository (an editable install) they are the checkout's own `prompts/`, `data/corpus/`
and `index_store/`. From a wheel, prompts and corpus are read inside the installed package (importlib.resources;
the wheel maps the repository's top-level folders into `rag/_prompts` and `rag/_data`), and the index lives in the
per-user data directory, never in site-packages. `--index-dir` / `RAG_INDEX_DIR` always win.
"""
from __future__ import annotations

import importlib.resources
from pathlib import Path

APP = "rag-papers"
_HERE = Path(__file__).resolve().parent


def checkout_root() -> Path | None:
    """The repository checkout this package is imported from, if it is (its pyproject names this project)."""
    root = _HERE.parent
    pyproject = root / "pyproject.toml"
    try:
        if pyproject.is_file() and f'name = "{APP}"' in pyproject.read_text(encoding="utf-8"):
            return root
    except OSError:
        pass
    return None


def _packaged(name: str) -> Path | None:
    path = importlib.resources.files("rag").joinpath(name)
    return Path(str(path)) if path.is_dir() else None


def prompts_dir() -> Path:
    root = checkout_root()
    return root / "prompts" if root else _packaged("_prompts") or _HERE / "_prompts"


def bundled_corpus() -> Path:
    root = checkout_root()
    return root / "data" / "corpus" if root else (_packaged("_data") or _HERE / "_data") / "corpus"


def user_data_dir() -> Path:
    import platformdirs

    return Path(platformdirs.user_data_dir(APP, appauthor=False))


def default_index_dir() -> Path:
    root = checkout_root()
    return root / "index_store" if root else user_data_dir() / "index"


RUNTIME_PACKAGES = ("rag-papers", "chromadb", "onnxruntime", "numpy", "tokenizers", "llama-index-core",
                    "sentence-transformers", "openai", "torch", "xllamacpp")


def runtime() -> dict[str, str]:
    """The versions and CPU features an answer depends on, besides code and index: the int8 embedding kernels
    differ by onnxruntime version and by CPU (VNNI or not), and a fresh install resolves unpinned versions anew.
    Recorded in eval reports so two runs that disagree can be told apart."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version(), "machine": platform.machine()}
    for package in RUNTIME_PACKAGES:
        try:
            out[package] = version(package)
        except PackageNotFoundError:
            out[package] = "not installed"
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
        out["cpu_int8"] = ",".join(sorted(flags & {"avx2", "avx512bw", "avx512_vnni", "avx_vnni", "amx_int8"})) or "none"
    except OSError:
        out["cpu_int8"] = "unknown"
    return out
