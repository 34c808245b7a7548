"""pytest's doctest collection: skip the flavour namespaces whose framework is missing (they
import JAX or PyTorch at the top; CI installs both, so there nothing is skipped)."""

import importlib.util

collect_ignore = [
    f"{name}_namespace.py" for name in ("jax", "torch") if importlib.util.find_spec(name) is None
]
