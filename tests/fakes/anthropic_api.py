"""A local fake of the Anthropic Messages API for ``anthropic.AsyncAnthropic`` tests.

    fake = FakeAnthropic()
    base = fake.start()                               # http://127.0.0.1:PORT
    client = anthropic.AsyncAnthropic(api_key="test-key", base_url=base,
                                      max_retries=0, timeout=5.0)
    # or: client = fake.client(max_retries=2, timeout=2.0)

``POST /v1/messages`` (``stream: true`` answered as SSE too) and
``POST /v1/messages/count_tokens``.  Auth: ``x-api-key`` or
``Authorization: Bearer`` (401 ``authentication_error`` when neither; when
``FakeAnthropic(api_key=...)`` is given, the key must match).  Malformed
requests get 400 ``invalid_request_error`` (missing model / max_tokens /
messages, bad roles, a ``tool_choice`` naming an undefined tool, a tool
without an object ``input_schema``).

Answers, first source that has one wins:

1. per-tool queue: ``queue_tool_input(input, tool_name="x")`` answers the
   next request that forces tool ``x``;
2. text queue: ``queue_text("...")`` answers the next request that forces no
   tool;
3. general queue: ``queue(item)`` / ``queue_tool_input(input)`` answers the
   next request, whatever it is (a ``dict`` is a tool input for the forced
   tool, a ``str`` is a text answer, a :class:`Reply` is taken as is);
4. ``set_responder(fn)``: ``fn(request_json)`` returns a tool input dict, a
   text ``str``, a :class:`Reply`, or ``None`` to fall through;
5. default: for a forced tool (``tool_choice`` ``{"type": "tool"}`` or
   ``"any"``) an input generated from the tool's ``input_schema`` (required
   fields, first enum value, bounds respected); otherwise text ``"OK"``.

The tool_use block's ``name`` is the tool forced by ``tool_choice``.

Faults: ``fail_next(kind, count=1, *, retry_after=0.2, delay=1.0,
status=None, message=None, mode="missing", route="messages")`` with kind
``"429"`` (headers ``retry-after-ms`` and ``retry-after``, default 0.2 s; body
``{"type": "error", "error": {"type": "rate_limit_error", ...}}``),
``"500"`` (``api_error``), ``"529"`` (``overloaded_error``), ``"5xx"`` (any
``status``), ``"error"`` (any ``status``; e.g. 400), ``"slow"`` (answer
normally after ``delay`` s), ``"drop"`` (close without answer) and
``"schema"`` (the normal answer, broken by ``mode``: ``"missing"`` drops a
required field, ``"enum"`` puts an invalid enum value, ``"type"`` gives a
field the wrong JSON type, ``"extra"`` adds an unknown field, ``"text"``
answers text instead of the forced tool, ``"max_tokens"`` a truncated tool
call with ``stop_reason="max_tokens"``; a schema fault consumes the scripted
answer it breaks).  Faults other than slow/schema consume no script item.

Records: ``requests()`` -> list of :class:`AnthropicRequest` (``body``,
``system_text``, ``messages``, ``tools``, ``tool_choice``, ``forced_tool``,
``all_text``, ``auth``, ``fault``, ``response``...), ``last_request()``,
``wait_for(predicate, timeout)`` / ``await wait_for_async(...)`` where
``predicate(list_of_requests)`` is truthy.  ``reset()`` clears everything.

Pytest: ``anthropic_fake_session`` (session scope) and ``anthropic_fake``
(function scope, reset) fixtures; import them into a conftest.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import json
import math
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from ._server import FakeLifecycle, FakeServer, Fault, FaultQueue, RequestLog, drop_connection, json_response

__all__ = [
    "AnthropicRequest",
    "FakeAnthropic",
    "Reply",
    "anthropic_fake",
    "anthropic_fake_session",
    "break_input",
    "example_from_schema",
]

DEFAULT_API_KEY = "sk-ant-test-fake-key"
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


@dataclass
class Reply:
    """A scripted answer.  Give ``tool_input`` (tool_use block) or ``text`` or ``raw``.

    ``raw`` is a complete response body sent as is (``status`` applies).
    """

    tool_input: dict[str, Any] | None = None
    text: str | None = None
    tool_name: str | None = None  # default: the tool forced by the request
    stop_reason: str | None = None
    usage: dict[str, int] | None = None
    raw: Any = None
    status: int = 200
    content: list[dict[str, Any]] | None = None  # explicit content blocks


@dataclass
class AnthropicRequest:
    """One request received by the fake."""

    http_method: str
    path: str
    headers: dict[str, str]
    body: Any
    timestamp: float
    auth: str | None  # "x-api-key" | "bearer" | None
    api_key: str | None
    fault: str | None = None
    status: int | None = None  # status answered (None until answered / when dropped)
    response: Any = None  # body answered (the final message for streams)

    @property
    def model(self) -> str | None:
        return self.body.get("model") if isinstance(self.body, dict) else None

    @property
    def system(self) -> Any:
        return self.body.get("system") if isinstance(self.body, dict) else None

    @property
    def system_text(self) -> str:
        """The system prompt as one string (text blocks joined by newlines)."""
        return _blocks_text(self.system)

    @property
    def messages(self) -> list[dict[str, Any]]:
        return (self.body.get("messages") or []) if isinstance(self.body, dict) else []

    @property
    def tools(self) -> list[dict[str, Any]]:
        return (self.body.get("tools") or []) if isinstance(self.body, dict) else []

    @property
    def tool_choice(self) -> dict[str, Any] | None:
        return self.body.get("tool_choice") if isinstance(self.body, dict) else None

    @property
    def forced_tool(self) -> str | None:
        return _forced_tool(self.body) if isinstance(self.body, dict) else None

    @property
    def stream(self) -> bool:
        return bool(self.body.get("stream")) if isinstance(self.body, dict) else False

    @property
    def messages_text(self) -> str:
        """All text of the messages (text blocks, tool results, tool inputs as JSON)."""
        return "\n".join(_blocks_text(m.get("content")) for m in self.messages if isinstance(m, dict))

    @property
    def all_text(self) -> str:
        """System prompt + messages text, for "was X quoted as data" assertions."""
        return self.system_text + "\n" + self.messages_text


def _blocks_text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts: list[str] = []
        for block in content:
            if isinstance(block, str):
                parts.append(block)
            elif isinstance(block, dict):
                if block.get("type") == "text":
                    parts.append(str(block.get("text", "")))
                elif block.get("type") == "tool_result":
                    parts.append(_blocks_text(block.get("content")))
                elif block.get("type") == "tool_use":
                    parts.append(json.dumps(block.get("input"), ensure_ascii=False))
                elif block.get("type") == "document":
                    src = block.get("source") or {}
                    parts.append(str(src.get("data", "")) if src.get("type") == "text" else "")
        return "\n".join(parts)
    return str(content)


def _forced_tool(body: dict[str, Any]) -> str | None:
    choice = body.get("tool_choice")
    tools = body.get("tools") or []
    if isinstance(choice, dict):
        if choice.get("type") == "tool":
            return choice.get("name")
        if choice.get("type") == "any" and tools:
            return tools[0].get("name")
    return None


def _tool_schema(body: dict[str, Any], name: str | None) -> dict[str, Any]:
    for tool in body.get("tools") or []:
        if isinstance(tool, dict) and tool.get("name") == name:
            return tool.get("input_schema") or {}
    return {}


# --------------------------------------------------------------------------- JSON schema helpers
def _resolve(schema: Any, root: dict[str, Any]) -> Any:
    seen = 0
    while isinstance(schema, dict) and "$ref" in schema and seen < 20:
        ref = schema["$ref"]
        if not ref.startswith("#/"):
            return {}
        node: Any = root
        for part in ref[2:].split("/"):
            node = node.get(part, {}) if isinstance(node, dict) else {}
        schema = node
        seen += 1
    if isinstance(schema, dict) and "allOf" in schema and len(schema["allOf"]) == 1:
        merged = {k: v for k, v in schema.items() if k != "allOf"}
        merged.update(_resolve(schema["allOf"][0], root))
        return merged
    return schema


def example_from_schema(schema: dict[str, Any], root: dict[str, Any] | None = None, depth: int = 0) -> Any:
    """A small instance that satisfies ``schema`` (the common JSON-schema subset)."""
    root = root if root is not None else schema
    schema = _resolve(schema, root)
    if not isinstance(schema, dict) or depth > 12:
        return None
    if "const" in schema:
        return schema["const"]
    if "default" in schema:
        return copy.deepcopy(schema["default"])
    if schema.get("enum"):
        return schema["enum"][0]
    for key in ("anyOf", "oneOf"):
        if schema.get(key):
            options = [_resolve(o, root) for o in schema[key]]
            non_null = [o for o in options if not (isinstance(o, dict) and o.get("type") == "null")]
            return example_from_schema((non_null or options)[0], root, depth + 1)
    typ = schema.get("type")
    if isinstance(typ, list):
        typ = next((t for t in typ if t != "null"), "null")
    if typ is None:
        typ = "object" if "properties" in schema else "string"
    if typ == "object":
        props = schema.get("properties") or {}
        required = schema.get("required") or list(props)
        return {
            name: example_from_schema(props.get(name, {}), root, depth + 1)
            for name in required
            if name in props or not props
        }
    if typ == "array":
        n = max(int(schema.get("minItems", 1)), 0)
        if schema.get("maxItems") is not None:
            n = min(n, int(schema["maxItems"]))
        return [example_from_schema(schema.get("items") or {}, root, depth + 1) for _ in range(n)]
    if typ in ("number", "integer"):
        lo = schema.get("minimum")
        if lo is None and schema.get("exclusiveMinimum") is not None:
            lo = schema["exclusiveMinimum"] + (1 if typ == "integer" else 0.5)
        hi = schema.get("maximum", schema.get("exclusiveMaximum"))
        value: float = lo if lo is not None else 0
        if hi is not None and value > hi:
            value = hi
        if lo is None and hi is not None and value >= hi:
            value = hi - 1
        return int(value) if typ == "integer" else float(value)
    if typ == "boolean":
        return False
    if typ == "null":
        return None
    # string
    fmt = schema.get("format")
    if fmt == "date-time":
        return "2025-01-02T15:04:05Z"
    if fmt == "date":
        return "2025-01-02"
    text = "example"
    min_len = int(schema.get("minLength", 0))
    if len(text) < min_len:
        text = text + "x" * (min_len - len(text))
    if schema.get("maxLength") is not None:
        text = text[: int(schema["maxLength"])]
    return text


def break_input(tool_input: Any, schema: dict[str, Any], mode: str = "missing") -> Any:
    """Return a copy of ``tool_input`` that violates ``schema`` according to ``mode``."""
    data = copy.deepcopy(tool_input) if isinstance(tool_input, dict) else {}
    root = schema
    schema = _resolve(schema, root) if isinstance(schema, dict) else {}
    props: dict[str, Any] = schema.get("properties") or {}
    required: list[str] = list(schema.get("required") or [])
    if mode == "missing":
        if required:
            data.pop(required[0], None)
            return data
        return {"__schema_break__": "no required field to drop"} if not data else {}
    if mode == "enum":
        for name, sub in props.items():
            sub = _resolve(sub, root)
            if isinstance(sub, dict) and sub.get("enum"):
                data[name] = "__NOT_A_VALID_ENUM__"
                return data
        return break_input(data, root, "missing")
    if mode == "type":
        for name, sub in props.items():
            sub = _resolve(sub, root)
            typ = sub.get("type") if isinstance(sub, dict) else None
            if isinstance(typ, list):
                typ = next((t for t in typ if t != "null"), None)
            wrong = {
                "string": 12345,
                "number": "not-a-number",
                "integer": "not-an-integer",
                "boolean": "maybe",
                "array": "not-an-array",
                "object": "not-an-object",
            }.get(typ or "", ["unexpected"])
            data[name] = wrong
            return data
        return ["not", "an", "object"]
    if mode == "extra":
        data["__unexpected_field__"] = True
        return data
    raise ValueError(f"unknown schema-break mode {mode!r}")


# --------------------------------------------------------------------------- the fake
class _ApiError(Exception):
    def __init__(self, status: int, message: str, err_type: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.err_type = err_type or _ERROR_TYPES.get(status, "api_error")


class FakeAnthropic(FakeLifecycle):
    """Fake Anthropic Messages API server (see module docstring)."""

    def __init__(self, *, api_key: str | None = None, default_text: str = "OK") -> None:
        self.server = FakeServer(name="fake-anthropic", handler_cancellation=True)
        self.api_key = api_key
        self.default_text = default_text
        self.faults = FaultQueue()
        self._log: RequestLog[AnthropicRequest] = RequestLog()
        self._lock = threading.Lock()
        self._general: deque[Any] = deque()
        self._texts: deque[Any] = deque()
        self._per_tool: dict[str, deque[Any]] = {}
        self._responder: Callable[[dict[str, Any]], Any] | None = None
        self._ids = itertools.count(1)
        self.server.add_route("POST", "/v1/messages", self._handle_messages)
        self.server.add_route("POST", "/v1/messages/count_tokens", self._handle_count_tokens)
        self.server.add_route("*", "/{tail:.*}", self._handle_unknown)

    # ------------------------------------------------------------------ lifecycle

    def client(
        self, *, api_key: str | None = None, max_retries: int = 0, timeout: float = 5.0, **kw: Any
    ) -> Any:
        """An ``anthropic.AsyncAnthropic`` pointed at this fake."""
        import anthropic

        return anthropic.AsyncAnthropic(
            api_key=api_key or self.api_key or DEFAULT_API_KEY,
            base_url=self.base_url,
            max_retries=max_retries,
            timeout=timeout,
            **kw,
        )

    def reset(self) -> None:
        with self._lock:
            self._general.clear()
            self._texts.clear()
            self._per_tool.clear()
            self._responder = None
        self.faults.clear()
        self._log.clear()

    # ------------------------------------------------------------------ scripting
    def queue(self, *items: Any) -> None:
        """General queue: each item (dict tool input / str text / Reply) answers one request."""
        with self._lock:
            self._general.extend(items)

    def queue_tool_input(
        self, tool_input: dict[str, Any], *, tool_name: str | None = None, **reply: Any
    ) -> None:
        """Queue a tool input; with ``tool_name`` only a request forcing that tool takes it."""
        item = (
            Reply(tool_input=tool_input, tool_name=tool_name, **reply) if reply or tool_name else tool_input
        )
        with self._lock:
            if tool_name:
                self._per_tool.setdefault(tool_name, deque()).append(item)
            else:
                self._general.append(item)

    def queue_text(self, text: str, **reply: Any) -> None:
        """Queue a text answer for the next request that forces no tool."""
        with self._lock:
            self._texts.append(Reply(text=text, **reply) if reply else text)

    def set_responder(self, fn: Callable[[dict[str, Any]], Any] | None) -> None:
        """``fn(request_json) -> dict | str | Reply | None`` (None: use the default)."""
        with self._lock:
            self._responder = fn

    def pending_script(self) -> int:
        with self._lock:
            return len(self._general) + len(self._texts) + sum(len(q) for q in self._per_tool.values())

    # ------------------------------------------------------------------ faults
    def fail_next(
        self,
        kind: str,
        count: int = 1,
        *,
        retry_after: float | None = None,
        delay: float = 1.0,
        status: int | None = None,
        message: str | None = None,
        mode: str = "missing",
        route: str = "messages",
    ) -> None:
        """Queue ``count`` faults for the next requests to ``route`` ("messages",
        "count_tokens" or "*").

        ``retry_after`` (seconds) is sent as ``retry-after-ms``/``retry-after``
        headers: always for 429 (default 0.2 s), for other statuses only when
        given (handy to make SDK retries of 5xx fast)."""
        kind = str(kind).lower()
        if kind in ("429", "rate_limit"):
            kind, status = "status", 429
        elif kind in ("500", "api_error"):
            kind, status = "status", 500
        elif kind in ("529", "overloaded"):
            kind, status = "status", 529
        elif kind in ("5xx", "server_error"):
            kind, status = "status", status or 500
        elif kind == "error":
            if status is None:
                raise ValueError("kind='error' needs status=")
            kind = "status"
        elif kind in ("slow", "delay"):
            kind = "slow"
        elif kind in ("drop", "disconnect"):
            kind = "drop"
        elif kind in ("schema", "bad_output", "schema_break"):
            kind = "schema"
        else:
            raise ValueError(f"unknown fault kind {kind!r}")
        if retry_after is None and status == 429:
            retry_after = 0.2
        fault = Fault(
            kind=kind,
            status=status,
            retry_after=retry_after if retry_after is not None else -1.0,
            delay=delay,
            message=message,
            extra={"mode": mode},
        )
        self.faults.push(route, fault, count)

    # ------------------------------------------------------------------ inspection
    def requests(self, path: str | None = "/v1/messages") -> list[AnthropicRequest]:
        """Recorded requests to ``path`` (all paths with ``path=None``)."""
        items = self._log.snapshot()
        return items if path is None else [r for r in items if r.path == path]

    def last_request(self) -> AnthropicRequest:
        reqs = self.requests()
        if not reqs:
            raise AssertionError("no /v1/messages request recorded")
        return reqs[-1]

    def wait_for(self, predicate: Callable[[list[AnthropicRequest]], Any], timeout: float = 5.0) -> Any:
        """Block until ``predicate(requests)`` is truthy (not from the client's loop)."""
        return self._log.wait_for(predicate, timeout)

    async def wait_for_async(
        self, predicate: Callable[[list[AnthropicRequest]], Any], timeout: float = 5.0
    ) -> Any:
        return await self._log.wait_for_async(predicate, timeout)

    # ------------------------------------------------------------------ answer building
    def _next_script(self, body: dict[str, Any]) -> Any:
        forced = _forced_tool(body)
        with self._lock:
            if forced and self._per_tool.get(forced):
                return self._per_tool[forced].popleft()
            if not forced and self._texts:
                return self._texts.popleft()
            if self._general:
                return self._general.popleft()
            responder = self._responder
        if responder is not None:
            return responder(copy.deepcopy(body))
        return None

    def _message(
        self,
        body: dict[str, Any],
        content: list[dict[str, Any]],
        stop_reason: str,
        usage: dict[str, int] | None,
    ) -> dict[str, Any]:
        n = next(self._ids)
        in_tokens = max(1, len(json.dumps(body, ensure_ascii=False)) // 4)
        out_tokens = max(1, len(json.dumps(content, ensure_ascii=False)) // 4)
        return {
            "id": f"msg_fake{n:06d}{uuid.uuid4().hex[:8]}",
            "type": "message",
            "role": "assistant",
            "model": body.get("model") or "claude-fake",
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": usage or {"input_tokens": in_tokens, "output_tokens": out_tokens},
        }

    def _tool_block(self, name: str | None, tool_input: Any) -> dict[str, Any]:
        return {
            "type": "tool_use",
            "id": f"toolu_fake{uuid.uuid4().hex[:16]}",
            "name": name or "tool",
            "input": tool_input,
        }

    def _build_answer(self, body: dict[str, Any], schema_mode: str | None) -> tuple[int, Any]:
        forced = _forced_tool(body)
        item = self._next_script(body)
        if isinstance(item, Reply) and item.raw is not None:
            return item.status, item.raw
        reply = item if isinstance(item, Reply) else Reply()
        if isinstance(item, dict):
            reply = Reply(tool_input=item)
        elif isinstance(item, str):
            reply = Reply(text=item)
        elif item is not None and not isinstance(item, Reply):
            raise TypeError(f"scripted answer must be dict, str, Reply or None, got {type(item)!r}")

        if reply.content is not None:
            stop = reply.stop_reason or (
                "tool_use" if any(b.get("type") == "tool_use" for b in reply.content) else "end_turn"
            )
            return reply.status, self._message(body, reply.content, stop, reply.usage)

        tool_name = reply.tool_name or forced
        wants_tool = reply.tool_input is not None or (reply.text is None and forced is not None)
        if wants_tool and tool_name is None and body.get("tools"):
            tool_name = body["tools"][0].get("name")
        schema = _tool_schema(body, tool_name)
        tool_input = reply.tool_input
        if wants_tool and tool_input is None:
            tool_input = example_from_schema(schema) if schema else {}

        if schema_mode is not None:
            if schema_mode == "text" or (not wants_tool and schema_mode != "max_tokens"):
                content = [{"type": "text", "text": reply.text or "I cannot comply with that format."}]
                return 200, self._message(body, content, "end_turn", reply.usage)
            if schema_mode == "max_tokens":
                block = self._tool_block(tool_name, {})
                return 200, self._message(body, [block], "max_tokens", reply.usage)
            tool_input = break_input(tool_input, schema, schema_mode)

        if wants_tool:
            content = [self._tool_block(tool_name, tool_input)]
            if reply.text:
                content.insert(0, {"type": "text", "text": reply.text})
            return reply.status, self._message(body, content, reply.stop_reason or "tool_use", reply.usage)
        text = reply.text if reply.text is not None else self.default_text
        content = [{"type": "text", "text": text}]
        return reply.status, self._message(body, content, reply.stop_reason or "end_turn", reply.usage)

    # ------------------------------------------------------------------ validation
    @staticmethod
    def _validate(body: Any) -> None:
        if not isinstance(body, dict):
            raise _ApiError(400, "Request body must be a JSON object")
        if not body.get("model"):
            raise _ApiError(400, "model: Field required")
        max_tokens = body.get("max_tokens")
        if not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1:
            raise _ApiError(400, "max_tokens: Field required and must be a positive integer")
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise _ApiError(400, "messages: at least one message is required")
        for i, msg in enumerate(messages):
            if not isinstance(msg, dict) or msg.get("role") not in ("user", "assistant"):
                raise _ApiError(400, f"messages.{i}.role: Input should be 'user' or 'assistant'")
            if not isinstance(msg.get("content"), str | list):
                raise _ApiError(400, f"messages.{i}.content: Field required")
        if messages[0].get("role") != "user":
            raise _ApiError(400, 'messages: first message must use the "user" role')
        tools = body.get("tools") or []
        if not isinstance(tools, list):
            raise _ApiError(400, "tools: Input should be a valid list")
        names = []
        for i, tool in enumerate(tools):
            if not isinstance(tool, dict) or not tool.get("name"):
                raise _ApiError(400, f"tools.{i}.name: Field required")
            if "type" not in tool or tool.get("type") == "custom":
                schema = tool.get("input_schema")
                if not isinstance(schema, dict) or schema.get("type") != "object":
                    raise _ApiError(400, f"tools.{i}.input_schema: Input should be an object schema")
            names.append(tool["name"])
        choice = body.get("tool_choice")
        if choice is not None:
            if not isinstance(choice, dict) or choice.get("type") not in ("auto", "any", "tool", "none"):
                raise _ApiError(400, "tool_choice: Input tag does not match any of the expected tags")
            if choice["type"] == "tool" and choice.get("name") not in names:
                raise _ApiError(400, f"tool_choice: Tool '{choice.get('name')}' not found in tools")
            if choice["type"] in ("any", "tool") and not tools:
                raise _ApiError(400, "tool_choice may only be specified while providing tools")

    def _auth(self, request: web.Request) -> tuple[str | None, str | None]:
        key = request.headers.get("x-api-key")
        if key:
            return "x-api-key", key
        authz = request.headers.get("Authorization", "")
        if authz.lower().startswith("bearer "):
            return "bearer", authz[7:].strip()
        return None, None

    # ------------------------------------------------------------------ HTTP handlers
    @staticmethod
    def _error(
        status: int, message: str, err_type: str | None = None, headers: dict[str, str] | None = None
    ) -> web.Response:
        request_id = f"req_fake{uuid.uuid4().hex[:16]}"
        body = {
            "type": "error",
            "error": {"type": err_type or _ERROR_TYPES.get(status, "api_error"), "message": message},
            "request_id": request_id,
        }
        hdrs = {"request-id": request_id}
        if headers:
            hdrs.update(headers)
        return json_response(body, status=status, headers=hdrs)

    async def _record(self, request: web.Request) -> AnthropicRequest:
        raw = await request.read()
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        auth, key = self._auth(request)
        rec = AnthropicRequest(
            http_method=request.method,
            path=request.path,
            headers=dict(request.headers),
            body=body,
            timestamp=time.time(),
            auth=auth,
            api_key=key,
        )
        self._log.append(rec)
        return rec

    async def _pre(
        self, request: web.Request, rec: AnthropicRequest, route: str
    ) -> tuple[web.StreamResponse | None, str | None]:
        """Apply faults and auth/validation; return (early response, schema mode)."""
        fault = self.faults.pop(route)
        rec.fault = (str(fault.status) if fault.kind == "status" else fault.kind) if fault else None
        schema_mode = None
        if fault is not None:
            if fault.kind == "drop":
                return await drop_connection(request), None
            if fault.kind == "slow":
                await asyncio.sleep(fault.delay)
            elif fault.kind == "schema":
                schema_mode = fault.extra.get("mode", "missing")
            elif fault.kind == "status":
                status = fault.status or 500
                headers: dict[str, str] = {}
                if fault.retry_after >= 0:
                    ra = float(fault.retry_after)
                    headers = {
                        "retry-after-ms": str(int(ra * 1000)),
                        "retry-after": str(max(1, math.ceil(ra))),
                    }
                default_msg = {
                    429: "Number of request tokens has exceeded your per-minute rate limit (fake)",
                    529: "Overloaded",
                    500: "Internal server error",
                }.get(status, f"Error {status}")
                return self._finish(
                    rec, self._error(status, fault.message or default_msg, headers=headers)
                ), None
        if rec.auth is None:
            return self._finish(rec, self._error(401, "x-api-key header is required")), None
        if self.api_key is not None and rec.api_key != self.api_key:
            return self._finish(rec, self._error(401, "invalid x-api-key")), None
        return None, schema_mode

    def _finish(self, rec: AnthropicRequest, resp: web.Response) -> web.Response:
        rec.status = resp.status
        try:
            rec.response = json.loads(resp.body) if resp.body else None  # type: ignore[arg-type]
        except (ValueError, TypeError):
            rec.response = None
        return resp

    async def _handle_messages(self, request: web.Request) -> web.StreamResponse:
        rec = await self._record(request)
        early, schema_mode = await self._pre(request, rec, "messages")
        if early is not None:
            return early
        try:
            self._validate(rec.body)
            status, answer = self._build_answer(rec.body, schema_mode)
        except _ApiError as exc:
            return self._finish(rec, self._error(exc.status, exc.message, exc.err_type))
        if status == 200 and rec.stream and isinstance(answer, dict) and answer.get("type") == "message":
            rec.status, rec.response = 200, answer
            return await self._stream(request, answer)
        return self._finish(
            rec,
            json_response(answer, status=status, headers={"request-id": f"req_fake{uuid.uuid4().hex[:16]}"}),
        )

    async def _stream(self, request: web.Request, message: dict[str, Any]) -> web.StreamResponse:
        resp = web.StreamResponse(
            status=200,
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-cache",
                "request-id": f"req_fake{uuid.uuid4().hex[:16]}",
            },
        )
        await resp.prepare(request)

        async def send(event: str, data: dict[str, Any]) -> None:
            await resp.write(f"event: {event}\ndata: {json.dumps(data)}\n\n".encode())

        start = {**message, "content": [], "stop_reason": None, "stop_sequence": None}
        start["usage"] = {"input_tokens": message["usage"]["input_tokens"], "output_tokens": 1}
        await send("message_start", {"type": "message_start", "message": start})
        for index, block in enumerate(message["content"]):
            if block["type"] == "text":
                await send(
                    "content_block_start",
                    {
                        "type": "content_block_start",
                        "index": index,
                        "content_block": {"type": "text", "text": ""},
                    },
                )
                text = block["text"]
                for i in range(0, max(len(text), 1), 16):
                    delta = {"type": "text_delta", "text": text[i : i + 16]}
                    await send(
                        "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}
                    )
            else:
                head = {k: v for k, v in block.items() if k != "input"}
                await send(
                    "content_block_start",
                    {"type": "content_block_start", "index": index, "content_block": {**head, "input": {}}},
                )
                js = json.dumps(block.get("input"))
                for i in range(0, len(js), 16):
                    delta = {"type": "input_json_delta", "partial_json": js[i : i + 16]}
                    await send(
                        "content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}
                    )
            await send("content_block_stop", {"type": "content_block_stop", "index": index})
        await send(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
                "usage": {"output_tokens": message["usage"]["output_tokens"]},
            },
        )
        await send("message_stop", {"type": "message_stop"})
        await resp.write_eof()
        return resp

    async def _handle_count_tokens(self, request: web.Request) -> web.StreamResponse:
        rec = await self._record(request)
        early, _ = await self._pre(request, rec, "count_tokens")
        if early is not None:
            return early
        tokens = max(1, len(json.dumps(rec.body, ensure_ascii=False)) // 4)
        return self._finish(rec, json_response({"input_tokens": tokens}))

    async def _handle_unknown(self, request: web.Request) -> web.StreamResponse:
        rec = await self._record(request)
        return self._finish(rec, self._error(404, f"Not found: {request.method} {request.path}"))


# --------------------------------------------------------------------------- pytest fixtures
try:
    import pytest
except ImportError:  # pragma: no cover
    pytest = None  # type: ignore[assignment]

if pytest is not None:

    @pytest.fixture(scope="session")
    def anthropic_fake_session() -> Any:
        """The process-wide FakeAnthropic (``FakeAnthropic.shared()``)."""
        return FakeAnthropic.shared()

    @pytest.fixture
    def anthropic_fake(anthropic_fake_session: FakeAnthropic) -> Any:
        """The session FakeAnthropic, reset before each test."""
        anthropic_fake_session.reset()
        yield anthropic_fake_session
        anthropic_fake_session.reset()
