"""The shared number filters on any Jinja environment: ``register(env)``.

Every template environment (Discord / X / Reddit messages, Telegram, the HTML reports, the
overseer's narratives) calls :func:`register`, so ``{{ x|money }}`` means the same thing in
every template:

============================  =====================================  ======================
filter                        example                                 function
============================  =====================================  ======================
``money`` / ``money(True)``   ``$1,000.00`` / ``+$892.70``            ``numbers.money``
``signed_money``              ``+$892.70``, ``-$12.05``, ``$0.00``    ``numbers.signed_money``
``pct(signed, digits)``       ``+35.70%``; ``pct(False, 0)``: ``36%``  ``numbers.pct``
``signed_pct(digits)``        ``+35.7%``                              ``numbers.signed_pct``
``price``                     ``0.86`` (a table column, after a label) ``numbers.price``
``option_price``              ``$0.86`` (a price in a sentence)       ``numbers.option_price``
``num(digits)``               ``1,234.50``                            ``numbers.num``
``trim(digits)``              ``1,234.5``, ``5``                      ``numbers.trim``
``int``                       ``1,235``                               ``numbers.integer``
``big`` / ``big_money``       ``1.25M`` / ``$1.25M``                  ``numbers.compact``
``strike``                    ``590``, ``592.5``                      ``numbers.strike``
``expiry``                    ``12/03/26``                            ``numbers.expiry``
``contract(exp, k, right)``   ``SPY 12/03/26 590C`` (on the symbol)   ``numbers.contract_label``
``plural(word[, many])``      ``1 trade``, ``6 trades`` (on the count) ``numbers.plural``
============================  =====================================  ======================

Missing or unusable values (None, NaN, infinity, text) render as ``numbers.PLACEHOLDER``.
"""

from __future__ import annotations

from typing import Any

from jinja2 import Environment

from core.format import numbers as n

FILTERS: dict[str, Any] = {
    "money": n.money,
    "signed_money": n.signed_money,
    "pct": n.pct,
    "signed_pct": n.signed_pct,
    "price": n.price,
    "option_price": n.option_price,
    "num": n.num,
    "trim": n.trim,
    "int": n.integer,
    "big": n.compact,
    "big_money": n.compact_money,
    "strike": n.strike,
    "expiry": n.expiry,
    "contract": n.contract_label,
    "plural": n.plural,
    "noun": n.noun,
}


def register(env: Environment) -> Environment:
    """Add the shared number filters to ``env`` (replacing any of the same name); returns it."""
    env.filters.update(FILTERS)
    return env
