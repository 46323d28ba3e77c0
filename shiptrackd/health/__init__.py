"""Health: the checks' judgements (rules, pure) and the monitor that measures, stores and publishes them."""
