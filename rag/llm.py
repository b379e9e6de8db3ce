"""OpenAI-compatible chat client: streaming, timeouts, retries with backoff, token counts.

The `openai` client retries connection errors, 408/429/5xx (honouring Retry-After) itself; failures that remain
become `LLMError` with a message that never includes the API key.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Callable

from .config import LLMSettings
from .errors import LLMError
from .tokens import count_tokens


LOCAL_CONTEXT = 4096
DEFAULT_CONTEXT = 8192
_KNOWN_CONTEXTS = (("gpt-4.1", 1_000_000), ("gpt-4o", 128_000), ("o1", 200_000), ("o3", 200_000), ("o4", 200_000),
                   ("gpt-4-turbo", 128_000), ("gpt-3.5-turbo", 16_385), ("claude", 200_000), ("llama-3", 128_000),
                   ("qwen2.5", 32_768), ("mistral", 32_768))


def _known_context(model: str) -> int | None:
    name = model.casefold().rsplit("/", 1)[-1]
    return next((n for prefix, n in _KNOWN_CONTEXTS if name.startswith(prefix)), None)


def _as_event(response):
    """A non-streamed completion in the shape of one stream event, so one loop reads both."""
    from types import SimpleNamespace

    choices = [SimpleNamespace(delta=SimpleNamespace(content=c.message.content), finish_reason=c.finish_reason or "stop")
               for c in response.choices]
    return SimpleNamespace(choices=choices, usage=response.usage)


@dataclass(frozen=True)
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int
    model: str


def _redact(message: str, secret: str | None) -> str:
    if secret:
        message = message.replace(secret, "***")
    return re.sub(r"(sk-[A-Za-z0-9_\-]{4})[A-Za-z0-9_\-]+", r"\1***", message)


class LLMClient:
    def __init__(self, settings: LLMSettings):
        if not settings.base_url:
            raise LLMError("no LLM endpoint configured (set llm.base_url or RAG_LLM__BASE_URL)")
        self.settings = settings
        self._key = os.environ.get(settings.api_key_env) or None
        from openai import OpenAI

        self._client = OpenAI(
            base_url=settings.base_url,
            api_key=self._key or "no-key",
            timeout=settings.timeout_s,
            max_retries=settings.max_retries,
        )
        self._context: int | None = None

    @classmethod
    def from_settings(cls, settings: LLMSettings) -> "LLMClient":
        """`base_url = "local"` starts the bundled model's llama.cpp server in this process and points the client at it."""
        if settings.base_url != "local":
            return cls(settings)
        from .local_llm import shared_server

        server = shared_server(settings.local_model, threads=settings.local_threads,
                               context_tokens=settings.context_tokens or LOCAL_CONTEXT)
        client = cls(settings.model_copy(update={"base_url": server.base_url, "model": settings.local_model}))
        client.server = server
        client.local = True
        return client

    local = False  # the bundled model in this process

    @property
    def bundled(self) -> bool:
        """One of the bundled tiny models, in this process or behind `rag llm serve`: it reads prompts at ~100
        tokens/s and declines answerable questions often, so the `auto` policies treat it apart."""
        from .local_llm import MODELS

        return self.local or self.settings.model in MODELS

    def context_window(self) -> int:
        """The model's context in tokens: the setting; else what a llama.cpp server reports (/props n_ctx); else
        known for common hosted models; else 8192."""
        if self._context is None:
            self._context = self.settings.context_tokens or self._server_context() or _known_context(
                self.settings.model) or DEFAULT_CONTEXT
        return self._context

    def _server_context(self) -> int | None:
        import json
        import urllib.request

        root = self.settings.base_url.rstrip("/").removesuffix("/v1")
        try:
            with urllib.request.urlopen(f"{root}/props", timeout=2) as resp:
                return int(json.loads(resp.read()).get("default_generation_settings", {}).get("n_ctx") or 0) or None
        except (OSError, ValueError):
            return None

    @property
    def name(self) -> str:
        return f"openai-compatible:{self.settings.model}"

    def count(self, text: str) -> int:
        return count_tokens(text, self.settings.encoding)

    def complete_json(self, messages: list[dict], schema: dict) -> Completion:
        """A JSON answer constrained by a JSON schema (OpenAI structured outputs; llama.cpp's json_schema)."""
        return self._call(messages, stream=False, response_format={
            "type": "json_schema", "json_schema": {"name": "answer", "schema": schema, "strict": False}})

    def complete(self, messages: list[dict], on_token: Callable[[str], None] | None = None) -> Completion:
        """Stream a chat completion; on a failure part-way, raise LLMError (the caller falls back)."""
        return self._call(messages, stream=True, on_token=on_token)

    def _call(self, messages: list[dict], *, stream: bool, on_token: Callable[[str], None] | None = None,
              **extra) -> Completion:
        import openai

        prompt_tokens = sum(self.count(m["content"]) + 4 for m in messages)
        parts: list[str] = []
        usage = None
        finished = False
        try:
            response = self._client.chat.completions.create(
                model=self.settings.model, messages=messages, max_tokens=self.settings.max_tokens,
                temperature=self.settings.temperature, stream=stream,
                **({"stream_options": {"include_usage": True}} if stream else {}), **extra)
            if not stream:
                response = [_as_event(response)]
            for event in response:
                if getattr(event, "usage", None):
                    usage = event.usage
                for choice in event.choices or []:
                    delta = choice.delta.content if getattr(choice, "delta", None) else None
                    if delta:
                        parts.append(delta)
                        if on_token:
                            on_token(delta)
                    if choice.finish_reason:
                        finished = True
        except openai.APITimeoutError:
            raise LLMError(f"LLM endpoint {self.settings.base_url} timed out after {self.settings.timeout_s:g}s") from None
        except openai.APIConnectionError as exc:
            raise LLMError(f"cannot reach LLM endpoint {self.settings.base_url}: "
                           f"{_redact(str(exc.__cause__ or exc), self._key)}") from None
        except openai.RateLimitError:
            raise LLMError(f"LLM endpoint {self.settings.base_url} is rate-limiting (HTTP 429) after "
                           f"{self.settings.max_retries} retries") from None
        except openai.APIStatusError as exc:
            raise LLMError(f"LLM endpoint {self.settings.base_url} answered HTTP {exc.status_code}: "
                           f"{_redact(str(exc.message), self._key)[:300]}") from None
        except openai.OpenAIError as exc:
            raise LLMError(f"LLM call failed: {_redact(str(exc), self._key)[:300]}") from None
        text = "".join(parts)
        if not finished:
            raise LLMError(f"LLM stream from {self.settings.base_url} ended before the answer was complete")
        if usage is not None:
            return Completion(text, int(usage.prompt_tokens or prompt_tokens), int(usage.completion_tokens or 0),
                              self.settings.model)
        return Completion(text, prompt_tokens, self.count(text), self.settings.model)
