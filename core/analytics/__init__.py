"""Options analytics: Black-Scholes greeks, dealer exposure, flow and book metrics.

Modules (pure numpy, no I/O except ``report.analyze_chain_file`` / ``report.main``):

- ``black_scholes``  vectorized BSM prices and d1/d2
- ``expiry_time``    year fraction to 16:00 New York on the expiry date
- ``greeks``         delta, gamma, vega, theta, vanna, charm (+ ``Greeks`` dataclass)
- ``validate``       ``clean_chain``: drop and count bad rows
- ``exposure``       GEX/DEX, by strike/expiry, walls (``compute_exposure``)
- ``gamma_flip``     zero-gamma level over a spot grid
- ``max_pain``       max-pain strike per expiry
- ``vpin``, ``book``, ``sweeps``, ``liquidity``  flow and order-book metrics
- ``report``         CHAIN.json contract (``analyze_chain_json``)
"""
