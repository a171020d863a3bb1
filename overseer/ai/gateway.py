"""The one door to Claude: forced tool use, schema validation, deadline, budget, cache, audit.

    gw = AiGateway(settings, secrets, clock, redis=redis, keys=keys, bus=bus)
    res = await gw.call_tool(purpose="review", system=SYSTEM, user=PROMPT, tool=TOOL,
                             model_cls=AiReview, max_tokens=700, tx=tx, correlation_id=cid)
    res.status      # "ok" | "unavailable"
    res.data        # the validated tool input (dict) when ok
    res.error       # short kind when unavailable: "no api key", "budget", "rate_limited",
                    # "server_error", "timeout", "connection", "bad_output", "api_error", "auth_error"

Failure is visible, never blocking: every upstream problem (429, 5xx, slow answer,
dropped connection, output that breaks the schema) becomes ``status="unavailable"``
within ``overseer.timeout_s`` (the whole call, SDK retries included, runs under one
``asyncio.wait_for``). Nothing here raises for an upstream problem.

Every call that reaches the budget check (sent, cached, refused for budget) is written
to the audit stream as an :class:`~core.bus.events.AuditEvent` (``actor="overseer"``,
``action="ai.call"``): purpose, model, prompt hash, system and user prompt, the raw
response (tool input or text), token counts, latency and outcome. With ``tx`` it rides
on the caller's transaction; with only a bus it commits its own; with neither (the CLI)
it is kept in :attr:`AiGateway.audit_log`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import anthropic

import asyncio
import hashlib
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from prometheus_client import Counter
from pydantic import BaseModel, ValidationError

from core.bus.bus import Bus, Tx
from core.bus.events import AuditEvent
from core.bus.keys import Keys
from core.clock.clock import Clock
from core.config.model import Settings
from core.config.secrets import Secrets
from overseer._util import canonical_json
from overseer.ai.budget import Budget, RedisBudget
from overseer.ai.cache import Cache, RedisCache

log = logging.getLogger("quanticity.overseer.ai")

AI_CALLS = Counter(
    "quanticity_ai_calls_total", "Overseer model calls by purpose and outcome", ["purpose", "outcome"]
)

Status = Literal["ok", "unavailable"]


@dataclass(frozen=True)
class ToolSpec:
    """A forced tool: the only way the model can answer."""

    name: str
    description: str
    input_schema: dict[str, Any]

    def param(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description, "input_schema": self.input_schema}


@dataclass
class AiResult:
    status: Status
    data: dict[str, Any] | None = None
    error: str | None = None
    detail: str = ""
    cached: bool = False
    model: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    latency_ms: int = 0
    prompt_hash: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def summary(self) -> dict[str, Any]:
        """The ``ai`` block of a verdict (no prompt text)."""
        if self.ok:
            return {
                "status": "ok",
                "model": self.model,
                "cached": self.cached,
                "latency_ms": self.latency_ms,
                "tokens": {"input": self.input_tokens, "output": self.output_tokens},
                "prompt_hash": self.prompt_hash,
            }
        out: dict[str, Any] = {"status": "unavailable", "error": self.error, "reason": self.error}
        if self.detail:
            out["detail"] = self.detail
        if self.latency_ms:
            out["latency_ms"] = self.latency_ms
        return out


def _unavailable(kind: str, detail: str = "", **kw: Any) -> AiResult:
    return AiResult(status="unavailable", error=kind, detail=detail[:200], **kw)


def classify(exc: BaseException) -> tuple[str, str]:
    """(short kind, one-line detail) for an upstream failure. Never includes secrets."""
    import anthropic  # imported on first use: a run without a key never pays for the SDK

    if isinstance(exc, (asyncio.TimeoutError, TimeoutError, anthropic.APITimeoutError)):
        return "timeout", "no answer within the deadline"
    if isinstance(exc, anthropic.RateLimitError):
        return "rate_limited", "429 from the API"
    if isinstance(exc, anthropic.APIStatusError):
        status = getattr(exc, "status_code", 0) or 0
        if status >= 500:
            return "server_error", f"HTTP {status} from the API"
        if status in (401, 403):
            return "auth_error", f"HTTP {status} from the API"
        return "api_error", f"HTTP {status} from the API"
    if isinstance(exc, anthropic.APIConnectionError):
        return "connection", "connection to the API failed"
    if isinstance(exc, anthropic.APIError):
        return "api_error", type(exc).__name__
    return "api_error", type(exc).__name__


class BadOutput(ValueError):
    """The model answered, but not with a valid call of the forced tool."""


def _message_payload(resp: Any) -> dict[str, Any]:
    """What the model said, for the audit trail (tool inputs and text blocks)."""
    blocks = []
    for b in getattr(resp, "content", None) or []:
        kind = getattr(b, "type", "")
        if kind == "tool_use":
            blocks.append(
                {"type": "tool_use", "name": getattr(b, "name", ""), "input": getattr(b, "input", None)}
            )
        elif kind == "text":
            blocks.append({"type": "text", "text": str(getattr(b, "text", ""))[:4000]})
        else:
            blocks.append({"type": str(kind)})
    return {"stop_reason": getattr(resp, "stop_reason", None), "content": blocks}


def parse_tool_answer(resp: Any, tool_name: str, model_cls: type[BaseModel]) -> dict[str, Any]:
    """The validated input of the forced tool call, or :class:`BadOutput`."""
    if getattr(resp, "stop_reason", None) != "tool_use":
        raise BadOutput(f"stop_reason {getattr(resp, 'stop_reason', None)!r}, expected 'tool_use'")
    calls = [b for b in getattr(resp, "content", None) or [] if getattr(b, "type", "") == "tool_use"]
    if len(calls) != 1 or getattr(calls[0], "name", "") != tool_name:
        raise BadOutput(f"expected exactly one {tool_name} call")
    raw = getattr(calls[0], "input", None)
    if not isinstance(raw, dict):
        raise BadOutput("tool input is not an object")
    try:
        return model_cls.model_validate(raw).model_dump(mode="json")
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err.get("loc", ())) or "(root)"
        raise BadOutput(f"{where}: {err.get('msg', 'invalid')}") from None


class AiGateway:
    """Claude access for one process/service. Construct once; ``await aclose()`` at the end."""

    def __init__(
        self,
        settings: Settings,
        secrets: Secrets,
        clock: Clock,
        *,
        redis: Any = None,
        keys: Keys | None = None,
        bus: Bus | None = None,
        actor: str = "overseer",
    ) -> None:
        self.settings = settings
        self.cfg = settings.overseer
        self.clock = clock
        self.bus = bus
        self.actor = actor
        key = secrets.anthropic_api_key.get_secret_value() if secrets.anthropic_api_key is not None else ""
        self._api_key = key.strip()
        self._base_url = (secrets.anthropic_base_url or "").strip() or None
        self._client: anthropic.AsyncAnthropic | None = None
        if redis is not None and keys is not None:
            self.budget: Budget = RedisBudget(
                redis, keys, self.cfg.max_calls_per_minute, self.cfg.max_tokens_per_day
            )
            self.cache: Cache = RedisCache(redis, keys, clock, self.cfg.cache_ttl_s)
        else:
            self.budget = Budget(self.cfg.max_calls_per_minute, self.cfg.max_tokens_per_day)
            self.cache = Cache(clock, self.cfg.cache_ttl_s)
        self.audit_log: list[dict[str, Any]] = []

    # ------------------------------------------------------------------ client
    @property
    def has_key(self) -> bool:
        return bool(self._api_key)

    def _sdk(self) -> anthropic.AsyncAnthropic:
        import anthropic

        if self._client is None:
            self._client = anthropic.AsyncAnthropic(
                api_key=self._api_key,
                base_url=self._base_url,
                max_retries=self.cfg.max_retries,
                timeout=self.cfg.timeout_s,
            )
        return self._client

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                await client.close()
            except Exception:
                log.debug("closing the Anthropic client failed", exc_info=True)

    # ------------------------------------------------------------------ the call
    @staticmethod
    def prompt_hash(model: str, system: str, user: str, tool: ToolSpec, max_tokens: int) -> str:
        canon = canonical_json(
            {"model": model, "system": system, "user": user, "tool": tool.param(), "max_tokens": max_tokens}
        )
        return hashlib.sha256(canon.encode("utf-8")).hexdigest()

    async def call_tool(
        self,
        *,
        purpose: str,
        system: str,
        user: str,
        tool: ToolSpec,
        model_cls: type[BaseModel],
        max_tokens: int,
        tx: Tx | None = None,
        correlation_id: str | None = None,
    ) -> AiResult:
        model = self.cfg.model
        digest = self.prompt_hash(model, system, user, tool, max_tokens)
        if not self.has_key:
            AI_CALLS.labels(purpose, "no_key").inc()
            return _unavailable("no api key", "ANTHROPIC_API_KEY is not set", model=model, prompt_hash=digest)

        cached = await self._cached(digest, model_cls)
        if cached is not None:
            res = AiResult(
                status="ok",
                data=cached["data"],
                cached=True,
                model=model,
                prompt_hash=digest,
                input_tokens=0,
                output_tokens=0,
            )
            AI_CALLS.labels(purpose, "cache_hit").inc()
            await self._audit(tx, correlation_id, purpose, res, system, user, response=cached["data"])
            return res

        now = self.clock.now()
        estimate = (len(system) + len(user) + len(canonical_json(tool.param()))) // 4 + max_tokens
        if not await self.budget.reserve(now, estimate):
            res = _unavailable(
                "budget",
                "model budget exhausted (calls per minute or tokens per day)",
                model=model,
                prompt_hash=digest,
            )
            AI_CALLS.labels(purpose, "budget").inc()
            await self._audit(tx, correlation_id, purpose, res, system, user, response=None)
            return res

        res, response_audit = await self._send(now, model, digest, system, user, tool, model_cls, max_tokens)
        AI_CALLS.labels(purpose, "ok" if res.ok else res.error or "error").inc()
        if not res.ok:
            log.warning("overseer model call %s unavailable: %s (%s)", purpose, res.error, res.detail)
        await self._audit(tx, correlation_id, purpose, res, system, user, response=response_audit)
        return res

    async def _send(self, now: datetime, model: str, digest: str, system: str, user: str, tool: ToolSpec,
                    model_cls: type[BaseModel], max_tokens: int) -> tuple[AiResult, Any]:
        """One request under the deadline: (result, raw response for the audit, None if none)."""
        started = time.perf_counter()
        try:
            resp = await asyncio.wait_for(
                self._sdk().messages.create(  # type: ignore[call-overload]
                    model=model,
                    max_tokens=max_tokens,
                    system=system,
                    messages=[{"role": "user", "content": user}],
                    tools=[tool.param()],
                    tool_choice={"type": "tool", "name": tool.name},
                ),
                timeout=self.cfg.timeout_s,
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - every upstream problem is "unavailable"
            kind, detail = classify(exc)
            latency = int((time.perf_counter() - started) * 1000)
            return _unavailable(kind, detail, model=model, prompt_hash=digest, latency_ms=latency), None
        latency = int((time.perf_counter() - started) * 1000)
        return await self._answer(resp, now, model, digest, tool, model_cls, latency)

    async def _answer(self, resp: Any, now: datetime, model: str, digest: str, tool: ToolSpec,
                      model_cls: type[BaseModel], latency: int) -> tuple[AiResult, Any]:
        """Spend the tokens, validate the forced tool call, cache a good answer."""
        usage = getattr(resp, "usage", None)
        tin = int(getattr(usage, "input_tokens", 0) or 0)
        tout = int(getattr(usage, "output_tokens", 0) or 0)
        await self.budget.spend(now, tin + tout)
        response_audit = _message_payload(resp)
        try:
            data = parse_tool_answer(resp, tool.name, model_cls)
        except BadOutput as exc:
            res = _unavailable("bad_output", str(exc), model=model, prompt_hash=digest,
                               latency_ms=latency, input_tokens=tin, output_tokens=tout)
            return res, response_audit
        res = AiResult(
            status="ok",
            data=data,
            model=str(getattr(resp, "model", model) or model),
            input_tokens=tin,
            output_tokens=tout,
            latency_ms=latency,
            prompt_hash=digest,
        )
        await self.cache.put(digest, {"data": data})
        return res, response_audit

    async def _cached(self, digest: str, model_cls: type[BaseModel]) -> dict[str, Any] | None:
        try:
            hit = await self.cache.get(digest)
        except Exception:
            log.warning("overseer cache read failed", exc_info=True)
            return None
        if not hit or not isinstance(hit.get("data"), dict):
            return None
        try:
            return {"data": model_cls.model_validate(hit["data"]).model_dump(mode="json")}
        except ValidationError:
            return None

    # ------------------------------------------------------------------ audit
    async def _audit(
        self,
        tx: Tx | None,
        correlation_id: str | None,
        purpose: str,
        res: AiResult,
        system: str,
        user: str,
        response: Any,
    ) -> None:
        detail = {
            "purpose": purpose,
            "model": res.model,
            "prompt_hash": res.prompt_hash,
            "status": res.status,
            "error": res.error,
            "error_detail": res.detail,
            "cached": res.cached,
            "tokens": {"input": res.input_tokens, "output": res.output_tokens},
            "latency_ms": res.latency_ms,
            "system": system,
            "prompt": user,
            "response": response,
        }
        if tx is not None:
            tx.emit(
                AuditEvent, correlation_id=correlation_id, actor=self.actor, action="ai.call", detail=detail
            )
        elif self.bus is not None:
            own = self.bus.tx()
            own.emit(
                AuditEvent, correlation_id=correlation_id, actor=self.actor, action="ai.call", detail=detail
            )
            await own.commit()
        else:
            self.audit_log.append(detail)
