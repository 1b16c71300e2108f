"""WSGI entry point for gunicorn: `service.wsgi:app`.

Builds the app but loads no model: each worker loads its own in gunicorn.conf.py's post_worker_init.
"""

from service.app import create_app

app = create_app()
