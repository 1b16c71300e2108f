"""The commands of `python -m model`, one module per job; model/cli.py parses and dispatches.

- `publishing`: train, import, publish, gate, report (a model on its way into the store)
- `browsing`: list, models, show, resolve, history, verify (reading the store)
- `aliases`: promote, rollback (moving an alias)
- `maintenance`: clean, keygen (housekeeping)
- `scoring`: score (files in batch, model/scoring/); `predictions`: what the scoring function stored
- `monitoring`: monitor (captured predictions against the training profile, model/monitor/)
- `options`: what every command reads from its options and the environment (store, name, keys)

Each `cmd_*` function takes the parsed arguments and returns an exit code; errors are raised as
model.errors exceptions, which model/cli.py turns into one `error:` line and the code.
"""
