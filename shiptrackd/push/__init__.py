"""
Tracking pushes in: a listener of its own, verification before anything else, then the sync writer.

`receiver` serves `/hooks/<provider>`; each provider's push dialect (`verify_push`, `parse_push`)
lives beside its poll dialect in providers/; `verify` and `jwks` hold the provider-neutral parts
(body cap, timestamp window, replay cache, signing keys).
"""
