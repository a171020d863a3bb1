"""Human-in-the-loop approval: policy (manual / auto / auto_if), cards with an atomic
claim in Redis, expiry. The Telegram bot presses buttons through :func:`decide`."""
