"""The analysis layer: function graphs, units, invariance proofs and the claims ledger."""
