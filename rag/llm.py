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

    @classmethod
    def from_settings(cls, settings: LLMSettings) -> "LLMClient":
        """`base_url = "local"` starts the bundled model's llama.cpp server in this process and points the client at it."""
        if settings.base_url != "local":
            return cls(settings)
        from .local_llm import shared_server

        server = shared_server(settings.local_model, threads=settings.local_threads,
                               context_tokens=settings.context_tokens)
        client = cls(settings.model_copy(update={"base_url": server.base_url, "model": settings.local_model}))
        client.server = server
        return client

    @property
    def name(self) -> str:
        return f"openai-compatible:{self.settings.model}"

    def count(self, text: str) -> int:
        return count_tokens(text, self.settings.encoding)

    def complete(self, messages: list[dict], on_token: Callable[[str], None] | None = None) -> Completion:
        """Stream a chat completion; on a failure part-way, raise LLMError (the caller falls back)."""
        import openai

        prompt_tokens = sum(self.count(m["content"]) + 4 for m in messages)
        parts: list[str] = []
        usage = None
        finished = False
        try:
            stream = self._client.chat.completions.create(
                model=self.settings.model,
                messages=messages,
                max_tokens=self.settings.max_tokens,
                temperature=self.settings.temperature,
                stream=True,
                stream_options={"include_usage": True},
            )
            for event in stream:
                if getattr(event, "usage", None):
                    usage = event.usage
                for choice in event.choices or []:
                    delta = choice.delta.content if choice.delta else None
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
