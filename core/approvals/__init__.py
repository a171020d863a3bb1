"""Human-in-the-loop approval, a trading step: policy (manual / auto / auto_if), cards with an
atomic claim in Redis (``claims``), deciding a card (``decide``), expiry and the ``approvals``
service (``service``). A trade goes core -> overseer -> core; nothing here imports ``bot/``.

Front ends only call :func:`core.approvals.decide.decide_signal` / ``decide_report`` and render:
the Telegram bot (``bot/telegram``: buttons and ``/approve``) and the operator's shell
(``main.py pending | approve | reject``).

Where the CLI goes: ``core/approvals/cli.py``, here, and not ``bot/``. It is the shell's door into
approvals, not a chat front end: it needs nothing from ``bot/`` (it shows the raw signer rather
than loading the Telegram package to name admins), it returns plain data (``pending_items``,
``Outcome``) that ``main.py`` (argparse, print, exit code) renders, and it must work in a process
that runs no bot (a core-only host, or a cockpit whose Telegram is down). Keeping it in ``bot/``
would make ``main.py approve`` depend on the bot package for no code of the bot's, and bring
back the core -> bot detour this package exists to remove.
"""
