"""Operator controls that any service may read: the persistent halt."""
