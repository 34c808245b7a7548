"""The command-line layer: argument parsing and terminal output, one module per command.

``scaleinv`` (the console script) and ``python -m scaleinv`` run :func:`scaleinv.cli.main.main`.
The layer sits on top: it imports the reports, analysis, numeric and symbolic layers; none of
them imports it.
"""
