"""Formatting shared by every surface: :mod:`core.format.numbers` (the functions) and
:mod:`core.format.jinja` (the same functions as filters of any Jinja environment)."""
