"""Doctest collection of the package: skip the flavour namespaces whose framework is missing
(they import JAX or PyTorch at the top; CI installs both, so there nothing is skipped)."""

import importlib.util

collect_ignore = [
    f"scaleinv/numeric/flavors/{name}_namespace.py"
    for name in ("jax", "torch")
    if importlib.util.find_spec(name) is None
]
