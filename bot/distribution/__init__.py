"""Tiered distribution of fills and approved reports (see ``service.py`` for the design)."""

from bot.distribution.outbox_html import render_outbox_html
from bot.distribution.render import ROUTES, Rendered, Renderer
from bot.distribution.service import DistributorService, idempotency_key

__all__ = ["ROUTES", "DistributorService", "Rendered", "Renderer", "idempotency_key", "render_outbox_html"]
