"""Tests for core.analytics."""
