"""The test kit: what the tests and the scripts (benchmarks, load generator, soak) share, and
nothing that is a test or a pytest fixture. A member's HTTP client and websockets (`client`),
aiortc peers for a call page (`peers`), Chromium pages (`browser`), Firefox (`firefox`), a
system on unused ports and a deployment of several nodes and gateways (`system`, `multinode`),
the one bounded wait (`waiting`), and the steps that many tests and benchmarks take: a call
(`calls`), the payer and the emulator at PayPal (`paypal`), an operator (`operators`). Test
modules import from here; nothing here imports a test module, nor conftest (test_layers.py)."""
