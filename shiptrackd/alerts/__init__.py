"""Alerting: when to notify (rules, pure), alert state in the store, and delivery through Apprise."""
