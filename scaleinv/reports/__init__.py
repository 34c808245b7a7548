"""The reports layer: LaTeX/PDF reports, figures and the command-line front."""
