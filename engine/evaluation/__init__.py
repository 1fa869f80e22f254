"""How good a fit is: metrics against truth (metrics), the methods compared (methods), the rendered
benchmark (benchmark), public datasets (evaluate), and footage without truth (report)."""
