"""A local OpenAI-compatible chat server for tests and benchmarks, scripted per test.

It speaks ``POST /v1/chat/completions`` (plain JSON and ``stream: true`` server-sent events,
with tool calls) and ``GET /v1/models`` on 127.0.0.1 and a free port, so ``ChatOpenAI`` with
``OPENAI_BASE_URL`` pointing here behaves exactly as against vLLM, Ollama or OpenAI itself.

Each request goes to a *script*: ``script(request) -> StubReply``. The default script answers
like the offline ``rules`` model (it rebuilds the conversation and asks ``RulesChatModel``), so
the whole graph can triage real emails; tests wrap it to inject faults (429/500 statuses, hangs
past the client's timeout, bodies that are not JSON) or a hostile model's answers (malformed
tool-call JSON, tools that do not exist).

Like the real API, the stub refuses (400) a conversation in which a tool result does not answer
a tool call of the assistant message before it, or a tool call is left unanswered; each such
refusal is kept in ``protocol_errors`` so a test can insist there were none.

Run it on its own (the throughput benchmark does) with::

    python tests/integration/openai_stub.py --latency 0.2
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)

#: The phases of the Email Triage graph, told apart by the tools bound to a request.
INVESTIGATION_TOOL_NAMES = frozenset(
    {"get_current_date", "get_db_schema", "run_sql_query", "get_policy_context"}
)


@dataclass(frozen=True)
class ChatRequest:
    """One request as the server received it."""

    index: int
    body: dict[str, Any]
    headers: dict[str, str]
    received_at: float

    @property
    def model(self) -> str:
        return str(self.body.get("model", ""))

    @property
    def stream(self) -> bool:
        return bool(self.body.get("stream"))

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.body.get("messages") or [])

    @property
    def tool_names(self) -> list[str]:
        return [
            str(tool.get("function", {}).get("name"))
            for tool in self.body.get("tools") or []
            if isinstance(tool, dict)
        ]

    @property
    def response_schema_name(self) -> str | None:
        """The schema name of a ``json_schema`` response format (structured output)."""
        response_format = self.body.get("response_format")
        if isinstance(response_format, dict) and response_format.get("type") == "json_schema":
            return str(response_format.get("json_schema", {}).get("name") or "response")
        return None

    @property
    def phase(self) -> str:
        """investigate, decide, draft, escalate, or other."""
        names = set(self.tool_names)
        if self.response_schema_name or "TriageDecision" in names:
            return "decide"
        if "draft_customer_email" in names:
            return "draft"
        if "create_escalation_ticket" in names:
            return "escalate"
        if names & INVESTIGATION_TOOL_NAMES:
            return "investigate"
        return "other"

    def langchain_messages(self) -> list[BaseMessage]:
        """The conversation rebuilt as LangChain messages (what a model implementation reads)."""
        rebuilt: list[BaseMessage] = []
        for message in self.messages:
            role = message.get("role")
            text = _text(message.get("content"))
            if role in ("system", "developer"):
                rebuilt.append(SystemMessage(content=text))
            elif role == "user":
                rebuilt.append(HumanMessage(content=text))
            elif role == "assistant":
                calls = []
                for call in message.get("tool_calls") or []:
                    function = call.get("function") or {}
                    try:
                        args = json.loads(function.get("arguments") or "{}")
                    except json.JSONDecodeError:
                        args = {}
                    calls.append({"name": function.get("name", ""), "id": call.get("id"),
                                  "args": args if isinstance(args, dict) else {},
                                  "type": "tool_call"})
                rebuilt.append(AIMessage(content=text, tool_calls=calls))
            elif role == "tool":
                rebuilt.append(ToolMessage(content=text, tool_call_id=str(message.get(
                    "tool_call_id", ""))))
        return rebuilt


@dataclass(frozen=True)
class StubToolCall:
    """A tool call as the server sends it: ``arguments`` is raw text, valid JSON or not."""

    name: str
    arguments: str
    id: str | None = None


@dataclass(frozen=True)
class StubReply:
    """What the server answers to one request."""

    content: str = ""
    tool_calls: tuple[StubToolCall, ...] = ()
    status: int = 200
    #: Sent instead of a completion when set (error bodies, or a body that is not JSON).
    raw_body: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    #: Seconds to wait before answering, on top of the server's fixed latency.
    delay: float = 0.0

    @classmethod
    def text(cls, content: str) -> StubReply:
        return cls(content=content)

    @classmethod
    def tool_call(cls, name: str, arguments: str | dict[str, Any],
                  call_id: str | None = None) -> StubReply:
        raw = arguments if isinstance(arguments, str) else json.dumps(arguments)
        return cls(tool_calls=(StubToolCall(name=name, arguments=raw, id=call_id),))

    @classmethod
    def error(cls, status: int, message: str = "stub error", *,
              retry_after_ms: int | None = None) -> StubReply:
        headers = {"retry-after-ms": str(retry_after_ms)} if retry_after_ms is not None else {}
        kind = "rate_limit_error" if status == 429 else "server_error"
        body = json.dumps({"error": {"message": message, "type": kind, "code": None}})
        return cls(status=status, raw_body=body, headers=headers)

    @classmethod
    def hang(cls, seconds: float) -> StubReply:
        """Answer only after ``seconds`` (longer than the client's timeout: a timeout)."""
        return cls(content="too late", delay=seconds)


Script = Callable[[ChatRequest], StubReply]


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(part.get("text", "")) for part in content if isinstance(part, dict))
    return "" if content is None else str(content)


_RULES_MODEL: Any = None
_RULES_LOCK = threading.Lock()


def rules_script(request: ChatRequest) -> StubReply:
    """Answer like the offline ``rules`` model would, through the OpenAI wire format."""
    global _RULES_MODEL
    with _RULES_LOCK:
        if _RULES_MODEL is None:
            from mediavault.agent.models.rules_model import RulesChatModel

            _RULES_MODEL = RulesChatModel()
    messages = request.langchain_messages()
    schema = request.response_schema_name
    if schema is not None:
        # Structured output: the rules model answers it as a call of a tool of that name.
        tools = [{"type": "function", "function": {"name": schema}}]
        answer = _RULES_MODEL.invoke(messages, tools=tools)
        args = answer.tool_calls[0]["args"] if answer.tool_calls else {}
        return StubReply.text(json.dumps(args))
    answer = _RULES_MODEL.invoke(messages, tools=request.body.get("tools") or None)
    return StubReply(
        content=_text(answer.content),
        tool_calls=tuple(StubToolCall(name=call["name"], arguments=json.dumps(call["args"]),
                                      id=call.get("id")) for call in answer.tool_calls),
    )


def conversation_problem(messages: list[dict[str, Any]]) -> str | None:
    """Why the real API would refuse this conversation (tool calls and results must pair up)."""
    open_calls: set[str] = set()
    for position, message in enumerate(messages):
        role = message.get("role")
        if role == "tool":
            call_id = str(message.get("tool_call_id"))
            if call_id not in open_calls:
                return (f"messages[{position}]: a 'tool' message must answer a tool call of "
                        f"the preceding assistant message (unknown tool_call_id {call_id!r})")
            open_calls.discard(call_id)
            continue
        if open_calls:
            return (f"messages[{position}]: tool calls {sorted(open_calls)} of the assistant "
                    "message were not answered by tool messages")
        if role == "assistant":
            open_calls = {str(call.get("id")) for call in message.get("tool_calls") or []}
    return None


class OpenAIStub:
    """An OpenAI-compatible server in a background thread; use it as a context manager."""

    def __init__(self, script: Script = rules_script, *, latency: float = 0.0,
                 port: int = 0) -> None:
        self.script = script
        self.latency = latency
        self.requests: list[ChatRequest] = []
        self.protocol_errors: list[str] = []
        self._lock = threading.Lock()
        self._counter = itertools.count()
        self._stopping = threading.Event()
        self._server = _Server(("127.0.0.1", port), _Handler)
        self._server.stub = self
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/v1"

    def start(self) -> OpenAIStub:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> OpenAIStub:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def requests_in(self, phase: str) -> list[ChatRequest]:
        return [r for r in self.requests if r.phase == phase]

    # -------------------------------------------------------------------- used by the handler

    def _record(self, body: dict[str, Any], headers: dict[str, str]) -> ChatRequest:
        with self._lock:
            request = ChatRequest(index=next(self._counter), body=body, headers=headers,
                                  received_at=time.monotonic())
            self.requests.append(request)
        return request

    def _reply_to(self, request: ChatRequest) -> StubReply:
        problem = conversation_problem(request.messages)
        if problem is not None:
            with self._lock:
                self.protocol_errors.append(problem)
            body = json.dumps({"error": {"message": problem, "type": "invalid_request_error",
                                         "code": None}})
            return StubReply(status=400, raw_body=body)
        return self.script(request)

    def _pause(self, seconds: float) -> None:
        if seconds > 0:
            self._stopping.wait(seconds)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 256  # the benchmark opens dozens of connections at once
    stub: OpenAIStub

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (timeout) closes its socket mid-answer: expected, not an error.
        pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; with Nagle's algorithm the second waits for the
    # client's delayed ACK (about 40 ms), which would make every "200 ms" call slower.
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        if self.path.rstrip("/").endswith("/stub/stats"):  # for the benchmark's figures
            self._send_json(200, {"requests": len(self.server.stub.requests)})
        elif self.path.rstrip("/").endswith("/models"):
            self._send_json(200, {"object": "list", "data": [
                {"id": "stub-model", "object": "model", "created": 0, "owned_by": "stub"}]})
        else:
            self._send_json(404, {"error": {"message": f"no route {self.path}"}})

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length)
        if not self.path.rstrip("/").endswith("/chat/completions"):
            self._send_json(404, {"error": {"message": f"no route {self.path}"}})
            return
        try:
            body = json.loads(raw)
        except json.JSONDecodeError:
            self._send_json(400, {"error": {"message": "request body is not JSON"}})
            return
        stub = self.server.stub
        request = stub._record(body, {k.lower(): v for k, v in self.headers.items()})
        reply = stub._reply_to(request)
        stub._pause(stub.latency + reply.delay)
        if stub._stopping.is_set():
            return
        try:
            if reply.raw_body is not None or reply.status != 200:
                self._send_raw(reply.status, reply.raw_body or "", reply.headers)
            elif request.stream:
                self._send_stream(request, reply)
            else:
                self._send_json(200, _completion(request, reply), reply.headers)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client timed out and left

    def _send_json(self, status: int, payload: dict[str, Any],
                   headers: dict[str, str] | None = None) -> None:
        self._send_raw(status, json.dumps(payload), headers or {},
                       content_type="application/json")

    def _send_raw(self, status: int, text: str, headers: dict[str, str],
                  content_type: str = "application/json") -> None:
        data = text.encode()
        self.send_response(status)
        self.send_header("content-type", content_type)
        self.send_header("content-length", str(len(data)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _send_stream(self, request: ChatRequest, reply: StubReply) -> None:
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("connection", "close")
        self.end_headers()
        for chunk in _chunks(request, reply):
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
            self.wfile.flush()
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()
        self.close_connection = True


def _call_id(request: ChatRequest, position: int, call: StubToolCall) -> str:
    return call.id or f"call_{request.index}_{position}"


def _usage(request: ChatRequest, reply: StubReply) -> dict[str, int]:
    prompt = sum(len(_text(m.get("content"))) for m in request.messages) // 4
    completion = (len(reply.content) + sum(len(c.arguments) for c in reply.tool_calls)) // 4
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion}


def _completion(request: ChatRequest, reply: StubReply) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": reply.content or None}
    if reply.tool_calls:
        message["tool_calls"] = [
            {"id": _call_id(request, i, call), "type": "function",
             "function": {"name": call.name, "arguments": call.arguments}}
            for i, call in enumerate(reply.tool_calls)
        ]
    return {
        "id": f"chatcmpl-stub-{request.index}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.model,
        "choices": [{"index": 0, "message": message,
                     "finish_reason": "tool_calls" if reply.tool_calls else "stop",
                     "logprobs": None}],
        "usage": _usage(request, reply),
    }


def _chunks(request: ChatRequest, reply: StubReply) -> Iterator[dict[str, Any]]:
    base = {"id": f"chatcmpl-stub-{request.index}", "object": "chat.completion.chunk",
            "created": int(time.time()), "model": request.model}

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish,
                                     "logprobs": None}]}

    yield chunk({"role": "assistant", "content": ""})
    # Content and arguments arrive in pieces, as from a real server.
    for start in range(0, len(reply.content), 16):
        yield chunk({"content": reply.content[start:start + 16]})
    for position, call in enumerate(reply.tool_calls):
        yield chunk({"tool_calls": [{"index": position, "id": _call_id(request, position, call),
                                     "type": "function",
                                     "function": {"name": call.name, "arguments": ""}}]})
        for start in range(0, len(call.arguments), 24):
            yield chunk({"tool_calls": [{"index": position, "function": {
                "arguments": call.arguments[start:start + 24]}}]})
    yield chunk({}, "tool_calls" if reply.tool_calls else "stop")
    options = request.body.get("stream_options") or {}
    if options.get("include_usage"):
        yield {**base, "choices": [], "usage": _usage(request, reply)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve the rules-backed OpenAI stub.")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per model call")
    args = parser.parse_args(argv)
    stub = OpenAIStub(latency=args.latency, port=args.port).start()
    # The parent reads this line to learn the address, then closes stdin to stop the server.
    print(stub.base_url, flush=True)
    try:
        sys.stdin.read()
    except KeyboardInterrupt:
        pass
    finally:
        print(f"requests: {len(stub.requests)}", file=sys.stderr, flush=True)
        stub.stop()


if __name__ == "__main__":
    main()
