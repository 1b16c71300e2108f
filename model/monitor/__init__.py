"""`python -m model monitor`: captured predictions against the version's training profile.

- `records`: reading a version's captured records (model/capture_files.py) within a time window
- `check`: the comparison (model/drift.py), the verdict and the printed table
- `report`, `plots`: the self-contained HTML report (matplotlib imported only there)

docs/monitoring.md explains the statistics, the thresholds and the exit codes.
"""
