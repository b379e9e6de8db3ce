"""A real OpenAI-compatible HTTP server on 127.0.0.1 for tests: it speaks the chat-completions protocol
(JSON and SSE streaming, usage, errors) and answers with scripted replies, since no LLM runs here."""
from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Reply:
    def __init__(self, text: str = "", *, status: int = 200, error: str = "", retry_after: str | None = None,
                 truncate: bool = False, delay: float = 0.0, chunk: int = 7):
        self.text, self.status, self.error = text, status, error
        self.retry_after, self.truncate, self.delay, self.chunk = retry_after, truncate, delay, chunk


class FakeOpenAIServer:
    def __init__(self):
        self.replies: list[Reply] = []
        self.default = Reply("I cannot tell.")
        self.requests: list[dict] = []
        self.headers: list[dict] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_GET(self):
                if self.path.endswith("/models"):
                    self._json(200, {"object": "list", "data": [{"id": "test-model", "object": "model"}]})
                else:
                    self._json(404, {"error": {"message": "not found"}})

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                server.requests.append(body)
                server.headers.append({k.lower(): v for k, v in self.headers.items()})
                reply = server.replies.pop(0) if server.replies else server.default
                if callable(reply):
                    reply = reply(body)
                if reply.delay:
                    time.sleep(reply.delay)
                if reply.status != 200:
                    extra = {"Retry-After": reply.retry_after} if reply.retry_after else {}
                    self._json(reply.status, {"error": {"message": reply.error or "server error", "type": "test"}}, extra)
                    return
                if body.get("stream"):
                    self._stream(body, reply)
                else:
                    self._json(200, {
                        "id": "c1", "object": "chat.completion", "created": 0, "model": body.get("model"),
                        "choices": [{"index": 0, "message": {"role": "assistant", "content": reply.text},
                                     "finish_reason": "stop"}],
                        "usage": {"prompt_tokens": 11, "completion_tokens": len(reply.text.split()), "total_tokens": 0}})

            def _json(self, status, payload, headers=None):
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def _stream(self, body, reply):
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                text = reply.text
                pieces = [text[i:i + reply.chunk] for i in range(0, len(text), reply.chunk)]
                if reply.truncate:
                    pieces = pieces[: max(1, len(pieces) // 2)]
                for piece in pieces:
                    self._event({"id": "c1", "object": "chat.completion.chunk", "created": 0, "model": body.get("model"),
                                 "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]})
                if reply.truncate:
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self._event({"id": "c1", "object": "chat.completion.chunk", "created": 0, "model": body.get("model"),
                             "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
                if (body.get("stream_options") or {}).get("include_usage"):
                    self._event({"id": "c1", "object": "chat.completion.chunk", "created": 0, "model": body.get("model"),
                                 "choices": [], "usage": {"prompt_tokens": 321, "completion_tokens": 45,
                                                          "total_tokens": 366}})
                self.wfile.write(b"data: [DONE]\n\n")
                self.wfile.flush()
                self.close_connection = True

            def _event(self, payload):
                self.wfile.write(b"data: " + json.dumps(payload).encode() + b"\n\n")
                self.wfile.flush()

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True  # a handler still sleeping on a slow reply must not hold up shutdown
        self.httpd.block_on_close = False
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
