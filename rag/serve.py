"""`rag serve`: the assistant behind an OpenAI-compatible HTTP API, so chat UIs, bots and editors can use it.

The answer text carries `[n]` markers; the citations (number, paper id, title, verbatim quote) and the sources
travel as structured data on the response and on the *final* chunk of a stream, so a client that reads only text
still sees the markers and one that reads JSON gets the quotes. One `Assistant` is shared by worker threads;
`serve.max_concurrency` bounds how many answers are computed at once.
"""
from __future__ import annotations

import asyncio
import hmac
import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any, AsyncIterator, Awaitable, Callable

import anyio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from .config import ServeSettings
from .errors import NoMatchingPapersError, RagError
from .types import Answer, Filters

log = logging.getLogger("rag.serve")


@dataclass
class ApiError(Exception):
    """An error reply in the OpenAI format: {"error": {"message", "type", "param", "code"}}."""

    status: int
    message: str
    type: str = "invalid_request_error"
    param: str | None = None
    code: str | None = None

    def response(self) -> JSONResponse:
        return _error_response(self.status, self.message, self.type, self.param, self.code)


def _error_response(status: int, message: str, type_: str, param: str | None = None,
                    code: str | None = None) -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": type_, "param": param, "code": code}}, status)


class Server:
    """The routes over one shared `Assistant`. `api_key` (already read from the environment) guards every route
    but /health."""

    def __init__(self, assistant, settings: ServeSettings, api_key: str | None = None):
        self.assistant = assistant
        self.settings = settings
        self.api_key = api_key
        self.limiter = anyio.CapacityLimiter(settings.max_concurrency)

    def app(self) -> Starlette:
        routes = [
            Route("/health", self._wrap(self.health, auth=False), methods=["GET"]),
            Route("/v1/models", self._wrap(self.models), methods=["GET"]),
            Route("/v1/chat/completions", self._wrap(self.chat_completions), methods=["POST"]),
            Route("/v1/search", self._wrap(self.search), methods=["POST"]),
            Route("/v1/papers/{paper_id:path}", self._wrap(self.paper), methods=["GET"]),
        ]
        return Starlette(routes=routes, exception_handlers={HTTPException: _http_error})

    # ---- plumbing: auth, errors and one log line per request, in one place ------------------------
    def _wrap(self, handler: Callable[[Request], Awaitable[Response]], auth: bool = True):
        async def endpoint(request: Request) -> Response:
            started = time.perf_counter()
            try:
                if auth:
                    self._authorize(request)
                response = await handler(request)
            except ApiError as exc:
                response = exc.response()
            except Exception as exc:  # a failure must not take the server down, nor leak details to the client
                status = _status_of(exc)
                response = JSONResponse(_error_body(exc, status), status)
            if not isinstance(response, StreamingResponse):
                _log_request(request, response.status_code, started)
            return response

        return endpoint

    def _authorize(self, request: Request) -> None:
        if not self.api_key:
            return
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), self.api_key.encode()):
            raise ApiError(401, "missing or wrong bearer token (Authorization: Bearer <key>)",
                           type="authentication_error", code="invalid_api_key")

    async def _json(self, request: Request) -> dict:
        """The request body as a JSON object, refused beyond `max_body_bytes` without reading it all."""
        limit = self.settings.max_body_bytes
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise ApiError(413, f"request body is {declared} bytes; the limit is {limit}", code="body_too_large")
        body = bytearray()
        async for part in request.stream():
            body += part
            if len(body) > limit:
                raise ApiError(413, f"request body exceeds {limit} bytes", code="body_too_large")
        try:
            data = json.loads(body or b"null")
        except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
            raise ApiError(400, f"request body is not valid JSON ({type(exc).__name__}: {exc})") from None
        if not isinstance(data, dict):
            raise ApiError(400, "request body must be a JSON object")
        return data

    async def _run(self, fn: Callable[[], Any]) -> Any:
        """Blocking library work on a worker thread, at most `max_concurrency` at once."""
        return await anyio.to_thread.run_sync(fn, limiter=self.limiter)

    # ---- routes ---------------------------------------------------------------------------------
    async def health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def models(self, request: Request) -> Response:
        return JSONResponse({"object": "list", "data": [
            {"id": self.settings.model_name, "object": "model", "created": 0, "owned_by": "rag-papers"}]})

    async def search(self, request: Request) -> Response:
        body = await self._json(request)
        query = body.get("query")
        if not isinstance(query, str) or not query.strip():
            raise ApiError(400, "'query' must be a non-empty string", param="query")
        self._check_length(query, "query")
        k = body.get("k")
        if k is not None and (not isinstance(k, int) or isinstance(k, bool) or not 1 <= k <= 100):
            raise ApiError(400, "'k' must be an integer from 1 to 100", param="k")
        filters = _filters(body)
        hits = await self._run(lambda: self.assistant.search(query, k, filters=filters))
        return JSONResponse([h.to_dict() for h in hits])

    async def paper(self, request: Request) -> Response:
        paper_id = request.path_params["paper_id"]
        paper = await self._run(lambda: self.assistant.paper(paper_id))
        if paper is None:
            raise ApiError(404, f"no paper with id {paper_id!r} in the index", param="paper_id", code="paper_not_found")
        return JSONResponse(paper.to_dict())

    async def chat_completions(self, request: Request) -> Response:
        body = await self._json(request)
        model = body.get("model")
        if model != self.settings.model_name:
            raise ApiError(404, f"the model {model!r} does not exist; this server answers as "
                                f"{self.settings.model_name!r}", param="model", code="model_not_found")
        history, question = self._conversation(body.get("messages"))
        filters = _filters(body)
        completion_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        if body.get("stream"):
            return StreamingResponse(self._stream(request, completion_id, history, question, filters),
                                     media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
        answer = await self._run(lambda: self.assistant.chat(history=history, filters=filters).ask(question))
        return JSONResponse({
            "id": completion_id, "object": "chat.completion", "created": int(time.time()),
            "model": self.settings.model_name,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": answer.text},
                         "finish_reason": "stop"}],
            "usage": _usage(answer), **_structured(answer)})

    def _conversation(self, messages: Any) -> tuple[list[dict], str]:
        """Earlier user/assistant turns become the history (follow-ups resolve against them); the last message,
        which must be the user's, is the question. System messages are ignored: the server's prompts decide."""
        if not isinstance(messages, list) or not messages:
            raise ApiError(400, "'messages' must be a non-empty list", param="messages")
        if len(messages) > self.settings.max_messages:
            raise ApiError(400, f"{len(messages)} messages; at most {self.settings.max_messages} are accepted",
                           param="messages")
        turns = []
        for i, message in enumerate(messages):
            if not isinstance(message, dict) or message.get("role") not in ("system", "developer", "user", "assistant",
                                                                             "tool"):
                raise ApiError(400, f"messages[{i}] must be an object with role system, user, assistant or tool",
                               param=f"messages[{i}]")
            if message["role"] in ("system", "developer", "tool") or \
                    (message["role"] == "assistant" and message.get("content") is None):
                continue  # instructions and tool traffic: the server's own prompts decide how it answers
            turns.append({"role": message["role"], "content": _text(message.get("content"), i)})
        if not turns or turns[-1]["role"] != "user" or not turns[-1]["content"].strip():
            raise ApiError(400, "the last message must be a non-empty user message", param="messages")
        self._check_length(turns[-1]["content"], "messages")
        return turns[:-1], turns[-1]["content"]

    def _check_length(self, text: str, param: str) -> None:
        if len(text) > self.settings.max_question_chars:
            raise ApiError(400, f"the question is {len(text)} characters; at most "
                                f"{self.settings.max_question_chars} are accepted", param=param)

    async def _stream(self, request: Request, completion_id: str, history: list[dict], question: str,
                      filters: Filters) -> AsyncIterator[str]:
        """SSE chunks: the role, the text as the chain emits it, then a final chunk with finish_reason, usage,
        citations and sources, then [DONE]. An error after the stream began is sent as an `error` event.

        The answer runs as its own task (no task group spans a `yield`), feeding a queue from its worker thread;
        when the client goes away, the next emitted text stops the chain."""
        started = time.perf_counter()
        created = int(time.time())
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[str | None] = asyncio.Queue()
        gone = threading.Event()
        streamed: list[str] = []

        def chunk(delta: dict, finish: str | None = None, **extra) -> str:
            return "data: " + json.dumps({
                "id": completion_id, "object": "chat.completion.chunk", "created": created,
                "model": self.settings.model_name,
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}], **extra},
                ensure_ascii=False) + "\n\n"

        def on_token(text: str) -> None:  # on the worker thread
            if gone.is_set():
                raise ClientGone("the client closed the stream")
            loop.call_soon_threadsafe(queue.put_nowait, text)

        def ask() -> Answer:
            try:
                return self.assistant.chat(history=history, filters=filters).ask(question, on_token=on_token)
            finally:
                loop.call_soon_threadsafe(queue.put_nowait, None)

        work = asyncio.ensure_future(self._run(ask))
        status = 200
        try:
            yield chunk({"role": "assistant", "content": ""})
            while (text := await queue.get()) is not None:
                streamed.append(text)
                yield chunk({"content": text})
            try:
                answer: Answer = await work
            except Exception as exc:  # reported in-stream: the 200 status line is already sent
                status = _status_of(exc)
                yield "data: " + json.dumps(_error_body(exc, status)) + "\n\n"
            else:
                sent = "".join(streamed)
                if answer.text != sent:
                    # the chain emitted more than its final text (an LLM stream that failed part-way, then the
                    # extractive answer): text-only clients get the final answer after a break; `rag.text` is it
                    yield chunk({"content": answer.text[len(sent):] if answer.text.startswith(sent)
                                 else "\n\n" + answer.text})
                yield chunk({}, "stop", usage=_usage(answer), **_structured(answer))
            yield "data: [DONE]\n\n"
        finally:
            gone.set()
            _log_request(request, status if work.done() else 499, started)


class ClientGone(Exception):
    """Raised on the worker thread to stop an answer nobody will read."""


def _status_of(exc: Exception) -> int:
    return 404 if isinstance(exc, NoMatchingPapersError) else 500


def _error_body(exc: Exception, status: int) -> dict:
    """The OpenAI error object for a failed answer. Details of server-side failures (paths, endpoints) go to the
    server log, not to the client."""
    if status == 404:
        return {"error": {"message": str(exc), "type": "invalid_request_error", "param": "filters",
                          "code": "no_matching_papers"}}
    log.error("answer failed: %s", exc, exc_info=not isinstance(exc, RagError))
    return {"error": {"message": "the answer failed on the server (see its log)", "type": "server_error",
                      "param": None, "code": None}}


def _text(content: Any, i: int) -> str:
    """A message's text: a string, or OpenAI content parts of type text."""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(isinstance(p, dict) and p.get("type") == "text"
                                         and isinstance(p.get("text"), str) for p in content):
        return "\n".join(p["text"] for p in content)
    raise ApiError(400, f"messages[{i}].content must be a string or a list of text parts", param=f"messages[{i}]")


def _filters(body: dict) -> Filters:
    """Metadata filters from the request body (`filters` object with since/until/category/author)."""
    raw = body.get("filters") or {}
    if not isinstance(raw, dict) or set(raw) - {"since", "until", "category", "author"} or \
            not all(isinstance(v, str) or v is None for v in raw.values()):
        raise ApiError(400, "'filters' must be an object with string fields since, until, category, author",
                       param="filters")
    filters = Filters(**raw)
    problems = filters.problems()
    if problems:
        raise ApiError(400, "; ".join(problems), param="filters")
    return filters


def _usage(answer: Answer) -> dict:
    u = answer.usage
    return {"prompt_tokens": u.prompt_tokens, "completion_tokens": u.completion_tokens,
            "total_tokens": u.prompt_tokens + u.completion_tokens}


def _structured(answer: Answer) -> dict:
    """What travels beside the text: citations and sources (the `rag ask --json` shapes) and the answer's state."""
    data = answer.to_dict()
    return {"citations": data["citations"], "sources": data["sources"],
            "rag": {"text": answer.text, "abstained": answer.abstained, "abstain_reason": data["abstain_reason"],
                    "intent": data["intent"], "standalone_question": answer.standalone_question,
                    "warnings": data["warnings"], "backend": answer.usage.backend}}


async def _http_error(request: Request, exc: HTTPException) -> Response:
    """Starlette's own 404/405 in the OpenAI error format too."""
    _log_request(request, exc.status_code, None)
    return _error_response(exc.status_code, f"{request.method} {request.url.path}: {exc.detail}",
                           "invalid_request_error", code="not_found" if exc.status_code == 404 else None)


def _log_request(request: Request, status: int, started: float | None) -> None:
    """One line per request; never the Authorization header."""
    took = f" {1000 * (time.perf_counter() - started):.0f}ms" if started is not None else ""
    client = request.client.host if request.client else "-"
    log.info("%s %s %s %d%s", client, request.method, request.url.path, status, took)


def run(assistant, settings: ServeSettings, api_key: str | None) -> None:
    """Serve until interrupted (uvicorn, one process; answers run on worker threads). Call `assistant.warm()`
    first, so the index and models are open before the first request."""
    import uvicorn

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    app = Server(assistant, settings, api_key).app()
    uvicorn.run(app, host=settings.host, port=settings.port, access_log=False, log_level="warning")
