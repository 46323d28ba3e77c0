"""Several daemons on one store: membership with heartbeats (and, on PostgreSQL, elected singletons)."""
