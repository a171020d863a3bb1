"""The typed configuration. Every field here is documented in ``config/default.yaml``.

Models forbid unknown keys so a typo fails at start instead of being ignored.
Secrets are NOT here: they come only from the environment (``core.config.secrets``).
"""

from __future__ import annotations

from datetime import time
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Mode(StrEnum):
    LIVE = "live"
    DRY_RUN = "dry-run"
    DEMO = "demo"


class RedisSettings(_Strict):
    url: str | None = None
    key_prefix: str = Field(default="q", min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    embedded_fallback: bool = True
    connect_timeout_s: float = Field(default=1.0, gt=0)
    stream_maxlen: int = Field(default=200_000, ge=1_000)
    claim_idle_ms: int = Field(default=30_000, ge=0)
    max_deliveries: int = Field(default=5, ge=1)
    processed_ttl_s: int = Field(default=7 * 86400, ge=60)


class MarketSettings(_Strict):
    source: Literal["simulator", "ibkr", "vendor"] = "simulator"
    symbols: list[str] = Field(default_factory=lambda: ["SPY", "QQQ", "IWM"])
    tick_seconds: int = Field(default=10, ge=1)
    chain_seconds: int = Field(default=60, ge=1)
    depth_levels: int = Field(default=10, ge=1, le=10)
    rate: float = Field(default=0.045, ge=-0.05, le=0.25)
    dividend_yield: float = Field(default=0.0, ge=0.0, le=0.25)
    snapshot_ttl_s: int = Field(default=300, ge=5)


class AnalyticsSettings(_Strict):
    flip_grid_levels: int = Field(default=200, ge=10, le=2000)
    flip_range_pct: float = Field(default=20.0, gt=0, le=50)
    vpin_buckets: int = Field(default=50, ge=5)
    min_minutes_to_expiry: float = Field(default=5.0, ge=0.5)


class StrategySettings(_Strict):
    enabled: bool = True
    symbols: list[str] = Field(default_factory=list)
    window: tuple[time, time]
    qty: int = Field(default=1, ge=1)
    min_confidence: float = Field(default=55.0, ge=0, le=100)
    cooldown_s: int = Field(default=900, ge=0)
    card_ttl_s: int = Field(default=300, ge=10)
    # thresholds overriding the defaults documented in core/signals/strategies/<name>.py
    params: dict[str, bool | int | float | str | list[float]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _window_order(self) -> StrategySettings:
        if self.window[0] >= self.window[1]:
            raise ValueError("window start must be before window end")
        return self


def _strategies_default() -> dict[str, StrategySettings]:
    return {
        "gamma_0dte": StrategySettings(symbols=["SPX", "SPY", "QQQ", "IWM"], window=(time(9, 45), time(15, 0)),
                                       card_ttl_s=90),
        "overnight_1dte": StrategySettings(symbols=["SPY", "QQQ", "IWM"], window=(time(15, 0), time(15, 45))),
        "moc_imbalance": StrategySettings(symbols=["SPY", "QQQ", "IWM"], window=(time(15, 30), time(15, 50)),
                                          card_ttl_s=60),
        "directional_swing": StrategySettings(
            symbols=["AAPL", "MSFT", "GOOGL", "AMZN", "NVDA", "META", "TSLA"],
            window=(time(9, 45), time(15, 45)), card_ttl_s=900),
    }


class SignalsSettings(_Strict):
    chain_max_lag_s: float = Field(default=90.0, gt=0)
    chain_max_lead_s: float = Field(default=180.0, gt=0)
    max_snapshot_age_s: float = Field(default=300.0, gt=0)
    history_rebuild_entries: int = Field(default=10_000, ge=0)
    confidence_ema_alpha: float = Field(default=1.0, gt=0, le=1)
    skip_held_contracts: bool = True


class RiskSettings(_Strict):
    account_value: float = Field(default=100_000.0, gt=0)
    risk_per_trade_pct: dict[Literal["0dte", "1dte", "swing"], float] = Field(
        default_factory=lambda: {"0dte": 2.0, "1dte": 3.0, "swing": 5.0})
    daily_loss_warn_pct: float = Field(default=4.0, gt=0, le=100)
    daily_loss_halt_pct: float = Field(default=6.0, gt=0, le=100)
    max_open_positions: int = Field(default=6, ge=1)
    max_same_direction: int = Field(default=3, ge=1)
    max_spread_pct_of_mid: float = Field(default=10.0, gt=0)
    max_quote_age_s: float = Field(default=15.0, gt=0)
    max_data_age_s: float = Field(default=60.0, gt=0)
    no_new_0dte_after: time = time(15, 30)

    @model_validator(mode="after")
    def _warn_below_halt(self) -> RiskSettings:
        if self.daily_loss_warn_pct >= self.daily_loss_halt_pct:
            raise ValueError("daily_loss_warn_pct must be below daily_loss_halt_pct")
        return self


class ExecutionSettings(_Strict):
    broker: Literal["paper", "ibkr"] = "paper"
    commission_per_contract: float = Field(default=0.65, ge=0)
    reprice_after_s: float = Field(default=30.0, gt=0)
    reprice_step_pct_of_spread: float = Field(default=25.0, gt=0, le=100)
    max_reprices: int = Field(default=2, ge=0)
    order_timeout_s: float = Field(default=120.0, gt=0)
    cancel_spread_pct_of_mid: float = Field(default=10.0, gt=0)


class IbkrSettings(_Strict):
    """Interactive Brokers (TWS or IB Gateway) - documented in config/default.yaml, ibkr section."""

    host: str = "127.0.0.1"
    port: int = Field(default=7497, ge=1, le=65535)  # TWS 7497 paper / 7496 live; Gateway 4002 / 4001
    # one API client id per process role: orders placed by one id are only visible/modifiable by it
    client_ids: dict[Literal["market", "execution", "check"], int] = Field(
        default_factory=lambda: {"market": 11, "execution": 12, "check": 19})
    account: str | None = None  # the account to trade when the login manages several (None: the first)
    connect_timeout_s: float = Field(default=10.0, gt=0)
    reconnect_min_s: float = Field(default=1.0, gt=0)  # first reconnect delay (doubles, with jitter)
    reconnect_max_s: float = Field(default=60.0, gt=0)  # cap of the reconnect delay
    market_data_type: Literal["live", "frozen", "delayed", "delayed_frozen"] = "live"
    max_messages_per_s: float = Field(default=45.0, gt=0, le=50)  # IB disconnects above ~50/s
    market_data_lines: int = Field(default=100, ge=10)  # simultaneous reqMktData lines of the account
    depth_subscriptions: int = Field(default=3, ge=0)  # simultaneous reqMktDepth (rotated over symbols)
    depth_rotate_s: float = Field(default=30.0, gt=0)  # how long one symbol keeps a depth line
    chain_expiries: int = Field(default=2, ge=1, le=12)  # nearest expiries subscribed per symbol ...
    chain_max_dte: int = Field(default=45, ge=0, le=400)  # ... among those at most this many days out
    chain_strikes_each_side: int = Field(default=8, ge=1, le=60)  # strikes above and below spot per expiry
    commission_wait_s: float = Field(default=5.0, gt=0)  # a fill waits this long for its commission report
    qualify_batch: int = Field(default=20, ge=1, le=50)  # contracts qualified per request batch (pacing)


class OverseerSettings(_Strict):
    model: str = "claude-sonnet-4-6"
    timeout_s: float = Field(default=8.0, gt=0)
    max_retries: int = Field(default=2, ge=0)
    max_calls_per_minute: int = Field(default=20, ge=1)
    max_tokens_per_day: int = Field(default=500_000, ge=1_000)
    cache_ttl_s: int = Field(default=600, ge=0)
    anomaly_interval_s: int = Field(default=30, ge=1)
    stale_feed_s: dict[str, float] = Field(default_factory=lambda: {"quotes": 30.0, "chains": 180.0})
    price_divergence_pct: float = Field(default=0.5, gt=0)
    slippage_spike_pct: float = Field(default=15.0, gt=0)
    drawdown_warn_pct: float = Field(default=4.0, gt=0)
    drawdown_critical_pct: float = Field(default=6.0, gt=0)
    # --- added by the overseer (documented in config/default.yaml, overseer section)
    review_max_tokens: int = Field(default=700, ge=64, le=8192)  # output tokens of one signal review
    narrative_max_tokens: int = Field(default=300, ge=32, le=4096)  # output tokens of one narrative
    slippage_window: int = Field(default=5, ge=1, le=100)  # entry fills averaged for slippage spikes
    broker_down_critical_s: float = Field(default=120.0, gt=0)  # broker down this long: CRITICAL
    degradation_window: int = Field(default=20, ge=5, le=500)  # closed trades per strategy judged
    degradation_min_trades: int = Field(default=10, ge=1)  # trades before win rate/loss size count
    baseline_win_rate_pct: float = Field(default=50.0, ge=0, le=100)  # expected win rate, every strategy
    strategy_baseline_win_rate_pct: dict[str, float] = Field(default_factory=dict)  # per-strategy override
    # the baseline from the ledger: a strategy's win rate over the trades it closed in this many New York
    # days before today, used once it has at least baseline_min_trades of them (else the two above)
    baseline_lookback_days: int = Field(default=90, ge=1, le=3650)
    baseline_min_trades: int = Field(default=30, ge=1)
    win_rate_margin_pts: float = Field(default=10.0, ge=0, le=100)  # flag: win rate this far under
    loss_win_ratio: float = Field(default=1.5, gt=0)  # flag: avg loss > this x avg win
    max_losing_streak: int = Field(default=5, ge=2)  # flag: this many losses in a row


class ApprovalSettings(_Strict):
    policy: Literal["manual", "auto", "auto_if"] = "manual"
    auto_if_max_risk_pct: float = Field(default=1.0, gt=0, le=100)


class TelegramAlerts(_Strict):
    fills: Literal["on", "silent", "off"] = "on"
    closes: Literal["on", "silent", "off"] = "on"
    warnings: Literal["on", "silent", "off"] = "on"
    critical: Literal["on", "silent", "off"] = "on"


class TelegramSettings(_Strict):
    enabled: bool = False
    per_chat_messages_per_s: float = Field(default=1.0, gt=0)
    max_message_chars: int = Field(default=4096, ge=100, le=4096)
    alerts: TelegramAlerts = Field(default_factory=TelegramAlerts)
    # --- added by the Telegram bot (documented in config/default.yaml, telegram section)
    poll_timeout_s: int = Field(default=10, ge=0, le=50)  # getUpdates long-poll timeout
    backoff_base_s: float = Field(default=1.0, gt=0)  # first retry delay after a network error / rejection
    backoff_max_s: float = Field(default=60.0, gt=0)  # cap of the exponential retry delay
    max_attempts: int = Field(default=8, ge=1)  # rejected (400/403) sends before the dead letter
    confirm_ttl_s: int = Field(default=120, ge=10)  # how long a /flatten or /resume confirm button stays valid
    max_event_age_s: int = Field(default=3600, ge=60)  # alerts/fills older than this (bot was down) are not sent
    sent_ttl_s: int = Field(default=7 * 86400, ge=3600)  # how long sent-message idempotency markers are kept


class TierSettings(_Strict):
    delay_s: int = Field(ge=0)


class StopUpdateSettings(_Strict):
    """Which trailing-stop moves are posted (bot/distribution/coalesce.py); 0 and 0 = every move."""

    min_interval_s: float = Field(default=300.0, ge=0)  # between posted stop moves of one trade
    min_move_pct: float = Field(default=10.0, ge=0, le=100)  # % of entry price above the last posted stop


class DistributionSettings(_Strict):
    tiers: dict[Literal["premium", "basic", "free"], TierSettings] = Field(default_factory=lambda: {
        "premium": TierSettings(delay_s=0), "basic": TierSettings(delay_s=60), "free": TierSettings(delay_s=300)})
    channels: list[Literal["discord", "x", "reddit", "outbox"]] = Field(
        default_factory=lambda: ["discord", "x", "reddit"])
    sink: Literal["outbox", "live"] = "outbox"
    max_attempts: int = Field(default=6, ge=1)
    backoff_base_s: float = Field(default=2.0, gt=0)
    backoff_max_s: float = Field(default=300.0, gt=0)
    subreddit: str = "quanticity"
    # how Discord is reached in "live": bot (threads, reconciliation) or webhook (simpler, no threads)
    discord_mode: Literal["bot", "webhook"] = "bot"
    # a claimed delivery is hidden this long; after a crash it is reconciled once the lease ends
    inflight_lease_s: float = Field(default=120.0, gt=0)
    # 429 answers do not count as failed attempts; after this many a delivery is dead-lettered anyway
    max_rate_limit_retries: int = Field(default=50, ge=1)
    # timeout of one post (a timeout is an "unknown outcome": reconciled before the next attempt)
    post_timeout_s: float = Field(default=20.0, gt=0)
    # recent posts scanned per platform when reconciling an in-flight delivery
    reconcile_scan_limit: int = Field(default=100, ge=5, le=100)
    # free-tier result teasers show the % return (never a price, strike or size)
    free_result_pct: bool = True
    # public URL prefix of report files (posts link <prefix>/<file name>); None = no link (a bare file
    # name is never posted): Discord posts carry the page as an attachment, X / Reddit say report_where
    report_base_url: str | None = None
    # where the public teasers (X, Reddit) say the report is when there is no report_base_url
    report_where: str = Field(default="in the free channel of our Discord", min_length=1, max_length=200)
    # largest report page attached to a Discord post (bytes); a larger one goes out without it
    report_attach_max_bytes: int = Field(default=8 * 1024 * 1024, ge=1, le=25 * 1024 * 1024)
    # how long delivery records (status, message id) are kept after completion (s)
    record_ttl_s: int = Field(default=30 * 86400, ge=3600)
    # chains (trade x channel x tier) sent in parallel on the wall clock (a SimClock is always sequential)
    send_concurrency: int = Field(default=8, ge=1, le=64)
    # coalescing of trailing-stop moves per trade (breakeven, scale-outs and the close always post)
    stop_updates: StopUpdateSettings = Field(default_factory=StopUpdateSettings)

    @field_validator("tiers")
    @classmethod
    def _all_tiers(cls, v: dict) -> dict:
        missing = {"premium", "basic", "free"} - set(v)
        if missing:
            raise ValueError(f"missing tiers: {sorted(missing)}")
        return v


class ReportSettings(_Strict):
    premarket: time = time(8, 30)
    intraday: time = time(13, 0)
    close: time = time(16, 10)
    out_dir: str = "var/reports"
    require_approval: bool = True
    # --- added by reports (documented in config/default.yaml, reports section)
    plotlyjs: Literal["inline", "cdn"] = "inline"  # plotly.js once per page: inlined (~4.8 MB, offline), or a CDN tag
    early_close_delay_min: int = Field(default=10, ge=0, le=180)  # early-close day: close report this long after
    catch_up_min: int = Field(default=30, ge=0, le=720)  # a scheduled report missed (restart) by <= this still builds
    index_symbols: list[str] = Field(default_factory=lambda: ["SPX", "SPY", "QQQ", "IWM"])  # GEX charts / levels
    commentary: Literal["auto", "template"] = "auto"  # auto: overseer narrator (model if available), else template
    # --- the monthly recap (track record; reports/recap.py, documented in config/default.yaml)
    recap_enabled: bool = True  # on the first NYSE session of a month: the previous month, from the ledger
    recap_at: time | None = None  # NY time; None = right after that day's close report


class MetricsSettings(_Strict):
    enabled: bool = True
    port: int = Field(default=9108, ge=0, le=65535)


class RunnerSettings(_Strict):
    """The live runner's loops: backoff after an error, heartbeat cadence, stall budgets."""

    poll_block_ms: int = Field(default=1000, ge=1, le=60_000)  # a consume loop waits this long for events
    stall_allowance_s: float = Field(default=30.0, gt=0)  # work allowed in one iteration beyond its wait
    backoff_initial_s: float = Field(default=0.5, gt=0)  # first pause after an error (doubles per error)
    backoff_max_s: float = Field(default=10.0, gt=0)  # cap of that pause
    heartbeat_every_s: float = Field(default=1.0, gt=0)  # heartbeat flush to Redis at most this often


class LoggingSettings(_Strict):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    json_output: bool = False


class LedgerSettings(_Strict):
    """The durable trade ledger (core/ledger). Where it lives: ``DATABASE_URL`` (environment /
    .env, a secret: it may carry a password) when set, else an embedded SQLite file at
    ``sqlite_path`` (the demo writes ``ledger.sqlite`` inside its ``--out`` instead)."""

    enabled: bool = True
    sqlite_path: str = "var/ledger/{mode}.sqlite"  # {mode} -> live | dry-run | demo
    connect_timeout_s: float = Field(default=5.0, gt=0)
    # stream retention: entries older than this are trimmed once every consumer group (the
    # ledger's included) has acknowledged them; 0 keeps the length cap (redis.stream_maxlen) only
    retention_days: float = Field(default=7.0, ge=0)
    trim_interval_s: int = Field(default=300, ge=10)


class DemoSettings(_Strict):
    seed: int = 1
    out_dir: str = "var/demo"
    start: time = time(8, 30)
    end: time = time(16, 15)
    feed_gap_symbol: str | None = "QQQ"
    feed_gap_start: time = time(11, 0)
    feed_gap_minutes: int = Field(default=3, ge=0)
    approve_reports: bool = True


class Settings(_Strict):
    mode: Mode = Mode.DEMO
    redis: RedisSettings = Field(default_factory=RedisSettings)
    market: MarketSettings = Field(default_factory=MarketSettings)
    analytics: AnalyticsSettings = Field(default_factory=AnalyticsSettings)
    strategies: dict[str, StrategySettings] = Field(default_factory=_strategies_default)
    signals: SignalsSettings = Field(default_factory=SignalsSettings)
    risk: RiskSettings = Field(default_factory=RiskSettings)
    execution: ExecutionSettings = Field(default_factory=ExecutionSettings)
    ibkr: IbkrSettings = Field(default_factory=IbkrSettings)
    overseer: OverseerSettings = Field(default_factory=OverseerSettings)
    approval: ApprovalSettings = Field(default_factory=ApprovalSettings)
    telegram: TelegramSettings = Field(default_factory=TelegramSettings)
    distribution: DistributionSettings = Field(default_factory=DistributionSettings)
    reports: ReportSettings = Field(default_factory=ReportSettings)
    metrics: MetricsSettings = Field(default_factory=MetricsSettings)
    runner: RunnerSettings = Field(default_factory=RunnerSettings)
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    ledger: LedgerSettings = Field(default_factory=LedgerSettings)
    demo: DemoSettings = Field(default_factory=DemoSettings)

    @model_validator(mode="after")
    def _mode_decides_the_parts(self) -> Settings:
        from core.config.modes import contradictions

        problems = contradictions(self)
        if problems:
            raise ValueError(f"mode {self.mode.value!r} contradicts " + "; ".join(problems))
        return self

    @property
    def key_namespace(self) -> str:
        """The Redis key prefix of this mode: each mode keeps its own state (``q.live``, ``q.dry-run``,
        ``q.demo``), so rehearsal state never leaks into live state."""
        return f"{self.redis.key_prefix}.{self.mode.value}"
