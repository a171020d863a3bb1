"""Running services: the Service base, the live and lock-step runners, metrics, logging."""
