"""Market data: the option-chain container, the deterministic simulator, vendor feeds."""
