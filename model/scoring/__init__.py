"""Scoring files: batch runs and uploads, and their stored predictions."""
