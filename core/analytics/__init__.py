"""Options analytics: Black-Scholes greeks, dealer exposure, flow and book metrics."""
