"""Evaluation of the trained models: metrics per test scenario, curves and the figure tables (report.py)."""
