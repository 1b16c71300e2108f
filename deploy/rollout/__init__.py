"""Rollouts: one core (deploy/rollout/core.py) and two targets, an ECS service and a local gunicorn."""
