"""Sending what is due: the lease loop over chains, and reconcile-then-post for one delivery.

Exactly one post per idempotency key (correlation id, event id, channel, tier)
    1. claim (``schedule.CLAIM_LUA``, atomic): only if due and not waiting for its chain;
       pushes the score out by ``inflight_lease_s`` (no other worker takes it), writes the
       in-flight marker BEFORE anything is posted, and returns the previous marker.
    2. if there was a previous marker, an earlier attempt may have posted (killed after
       posting, timeout, lost answer): ``sink.find_existing`` asks the platform for a post
       with the delivery's exact payload (``Payload``: the text / embed / title stored in
       the delivery record, deterministic for the key) in the same place: Discord: the
       bot's own message in the recent history of the channel or thread (or the nonce,
       where Discord hands one back); X: the account's recent tweets replying to the same
       parent; Reddit: recent submissions (title + body) / comments on the submission;
       outbox: the file. Found -> recorded as delivered without posting again. No internal
       id is put into any text; every position text carries its event time to the second,
       so two posts of two trades never share a payload.
    3. post (Discord also sends ``nonce=<key>`` with ``enforce_nonce``: a re-send inside
       Discord's window returns the existing message; X refuses a repeat of a recent
       status with a "duplicate content" 403, resolved by the same lookup).
    4. record the outcome in one MULTI/EXEC (``outcomes.py``).
    Killed between 3 and 4: the marker and the leased schedule entry remain; after the
    lease, step 2 finds the message. Blocking clients (tweepy, praw) run one call at a
    time per sink, so a lookup never races a post that timed out but is still running.
    Webhook mode cannot read the channel: at-least-once there.

Concurrency
    ``send_due`` may run concurrently (timer loop, post-commit sends, several processes):
    the claim decides. On a SimClock chains are sent one after another in a fixed order
    (byte-identical demo outbox); on the wall clock ``send_concurrency`` chains at a time.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Mapping
from typing import Any

from bot.distribution.outcomes import Outcomes
from bot.distribution.schedule import Schedule, payload, thread_ref
from bot.publishers.base import PostMeta, PublishError, Sink
from core.runtime import metrics

log = logging.getLogger("quanticity.distributor")

BATCH = 200


class Sender:
    """Claims due deliveries and posts them; ``outcomes`` records what happened."""

    def __init__(self, *, redis: Any, sched: Schedule, outcomes: Outcomes, sinks: Callable[[], Mapping[str, Sink]],
                 dist: Any, clock: Any, actor: str) -> None:
        self.redis = redis
        self.sched = sched
        self.outcomes = outcomes
        self._sinks = sinks
        self.dist = dist
        self.clock = clock
        self.actor = actor

    async def send_due(self, now_ms: int) -> None:
        for _ in range(50):
            items: list[tuple[str, float]] = await self.redis.zrangebyscore(  # type: ignore[assignment]
                self.sched.queue, "-inf", now_ms, start=0, num=BATCH, withscores=True)
            if not items:
                break
            chains = await self._read_chains(items)
            # chains in order of their earliest due item; inside a chain, event order
            ordered = sorted(chains.items(), key=lambda kv: (min(sc for sc, _ in kv[1]), kv[0]))
            runs = [[spec for _, spec in sorted(group, key=lambda w: w[1]["seq"])] for _, group in ordered]
            if self.clock.simulated or self.dist.send_concurrency <= 1:
                for run in runs:
                    for spec in run:
                        await self.process(spec, now_ms)
            else:
                sem = asyncio.Semaphore(self.dist.send_concurrency)

                async def chain_run(run: list[dict[str, Any]], sem: asyncio.Semaphore = sem) -> None:
                    async with sem:
                        for spec in run:
                            await self.process(spec, now_ms)

                await asyncio.gather(*(chain_run(r) for r in runs))
            if len(items) < BATCH:
                break

    async def _read_chains(self, items: list[tuple[str, float]]) -> dict[str, list[tuple[int, dict[str, Any]]]]:
        """The delivery records of ``items`` grouped by chain; records missing or unreadable are dropped."""
        pipe = self.redis.pipeline(transaction=False)
        for idem, _score in items:
            pipe.hget(self.sched.delivery_key(idem), "spec")
        raws = await pipe.execute()
        chains: dict[str, list[tuple[int, dict[str, Any]]]] = {}
        for (idem, score), raw in zip(items, raws, strict=True):
            if raw is None:
                log.error("delivery %s scheduled without a record: dropped", idem)
                await self.redis.zrem(self.sched.queue, idem)
                continue
            try:  # one unreadable record must not hold up every delivery behind it
                spec = json.loads(raw)
                chains.setdefault(spec["chain"], []).append((int(score), spec))
            except (ValueError, KeyError, TypeError) as exc:
                metrics.REJECTED.labels(self.actor, "bad_delivery_record").inc()
                log.error("delivery %s has an unreadable record (%s): dropped", idem, exc)
                await self.redis.zrem(self.sched.queue, idem)
                continue
        return chains

    async def process(self, spec: dict[str, Any], now_ms: int) -> None:
        idem, channel = spec["idem"], spec["channel"]
        sink = self._sinks().get(channel)
        if sink is None:
            await self.outcomes.dead_letter(spec, attempts=0, rl=0,
                                            err=PublishError(f"channel {channel} not configured"), now_ms=now_ms)
            return
        gate = self.outcomes.blocked_until.get(channel)
        if gate is not None and gate > now_ms:
            await self.redis.zadd(self.sched.queue, {idem: gate}, xx=True)
            return
        lease = now_ms + int(self.dist.inflight_lease_s * 1000)
        marker = json.dumps({"at": now_ms})
        claimed = await self.sched.claim(spec, now_ms, lease, marker)
        if not claimed or claimed[0] != "claimed":
            return  # not due any more (another worker has it), already finished, or waiting for its chain
        _, inflight, attempts, rl, thread_raw = (str(x) for x in claimed)
        attempts_n, rl_n = int(attempts or 0), int(rl or 0)
        thread = thread_ref(thread_raw) if sink.threads else None
        meta = PostMeta(channel=channel, tier=spec["tier"], event=spec["event"],
                        correlation_id=spec["correlation_id"])
        if inflight:
            try:
                found = await asyncio.wait_for(
                    sink.find_existing(idem, channel_target=spec["target"], reply_to=thread, meta=meta,
                                       expected=payload(spec)),
                    timeout=self.dist.post_timeout_s)
            except Exception as exc:  # noqa: BLE001 - cannot tell: do not post blind
                err = exc if isinstance(exc, PublishError) else PublishError(
                    f"reconcile failed: {type(exc).__name__}", ambiguous=True)
                err.ambiguous = True  # the marker stays: still unknown whether it was posted
                await self.outcomes.failure(spec, err, attempts_n, rl_n, now_ms, sink, thread, meta)
                return
            if found is not None:
                log.info("delivery %s %s/%s found on the platform after an interrupted attempt", idem, channel,
                         spec["tier"])
                await self.outcomes.delivered(spec, found, thread, attempts_n or 1, now_ms, reconciled=True)
                return
        # the in-flight marker was written by the claim, before this post
        try:
            result = await asyncio.wait_for(
                sink.post(spec["target"], spec["text"], spec["embed"], reply_to=thread, idempotency_key=idem,
                          title=spec["title"], thread_name=spec["thread_name"], meta=meta,
                          attachment=spec.get("attachment")),
                timeout=self.dist.post_timeout_s)
        except PublishError as exc:
            await self.outcomes.failure(spec, exc, attempts_n, rl_n, now_ms, sink, thread, meta)
            return
        except TimeoutError:
            await self.outcomes.failure(spec, PublishError("post timed out", ambiguous=True), attempts_n, rl_n,
                                 now_ms, sink, thread, meta)
            return
        except Exception as exc:
            log.exception("sink %s raised", channel)
            await self.outcomes.failure(spec, PublishError(f"{type(exc).__name__}", ambiguous=True), attempts_n,
                                 rl_n, now_ms, sink, thread, meta)
            return
        await self.outcomes.delivered(spec, result, thread, attempts_n + 1, now_ms)
