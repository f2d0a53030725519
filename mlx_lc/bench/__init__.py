"""`mlx-lc bench`: speed and memory of the core, measured side by side in one run.

run.py runs the row groups (BenchConfig, run), setup.py writes what they run on (random models,
adapters, calibrations), measure.py times and measures, report.py writes the table, JSON and chart.
"""
