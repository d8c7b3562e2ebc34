"""The test kit: what the tests and the scripts (benchmarks, load generator, soak) share, and
nothing that is a test or a pytest fixture. A member's HTTP client and websockets (`client`),
aiortc peers for a call page (`peers`), Firefox over Marionette (`firefox`), a deployment of
several nodes and gateways (`multinode`), the one bounded wait (`waiting`), and the steps of a
call and of a PayPal approval that many tests and benchmarks take (`calls`, `paypal`).
Test modules import from here; nothing here imports a test module (tests/test_layers.py)."""
