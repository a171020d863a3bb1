"""Domain models shared by every folder: contracts, signals, orders, fills, positions.

These are plain pydantic models with no I/O. Events on the bus (``core.bus.events``)
carry them; risk, execution and the overseer take them as inputs.
"""
