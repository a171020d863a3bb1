"""Options analytics: Black-Scholes greeks, dealer exposure, flow and book metrics.

Modules (pure numpy, no I/O except ``report.analyze_chain_file`` / ``report.main``):

- ``black_scholes``  vectorized BSM prices and d1/d2
- ``expiry_time``    year fraction to 16:00 New York on the expiry date
- ``greeks``         delta, gamma, vega, theta, vanna, charm (+ ``Greeks`` dataclass)
- ``validate``       ``validate_uses``: rows per use (max pain, GEX, DEX, flip) and rejections by
                     use and reason; ``clean_chain``: rows passing every check
- ``iv_solver``      vectorized BSM implied volatility; ``volatility``: vendor IV else solved
- ``chain_analysis`` ``analyze_chain``: the one path the service and the CLI share
- ``cboe``           Cboe delayed-quote CSV export -> OptionChain
- ``exposure``       GEX/DEX, by strike/expiry, walls (``compute_exposure``)
- ``gamma_flip``     zero-gamma level over a spot grid
- ``max_pain``       max-pain strike per expiry
- ``vpin``, ``book``, ``sweeps``, ``liquidity``  flow and order-book metrics
- ``report``         CHAIN.json contract (``analyze_chain_json``)
"""
