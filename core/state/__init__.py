"""Shared state readers/writers in Redis hashes: account, open positions, strategy switches,
feed freshness. Services write through their ``tx``; anyone may read."""
