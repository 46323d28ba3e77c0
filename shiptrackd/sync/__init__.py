"""Syncing tracking status: the engine (I/O), the provider throttle, and the cadence rules (pure)."""
