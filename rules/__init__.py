"""The product's rules, pure: a call from ring to end, negotiation, fees, the ledger, refunds,
disputes, payouts, presence, placement. Each module imports only the standard library,
third-party packages and other rules (tests/test_layers.py holds it); the actors and the
gateway carry their answers out."""
