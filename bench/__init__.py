"""Benchmark: the service under gunicorn against in-process predict_proba and a FastAPI peer."""
