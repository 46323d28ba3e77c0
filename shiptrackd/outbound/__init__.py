"""Status changes leaving the box: the outbox's payloads, the signing dispatcher, and its policy (issue 11)."""
