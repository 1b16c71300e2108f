"""Train, version, store and load scikit-learn models.

The store layout, manifest and alias contract are described in README.md ("The model store").
Nothing here does work at import time: no model is loaded and no client is built until asked.
"""
