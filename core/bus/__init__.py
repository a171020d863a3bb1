"""The Redis bus: key names, typed events, publish, consumer groups, atomic handling."""
