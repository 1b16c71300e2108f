#!/bin/sh
# The image's entry point. ECS and `docker run IMAGE` pass no argument; SageMaker's hosting contract
# starts the container as `docker run IMAGE serve` and probes GET /ping on port 8080. Both serve.
# Any other command runs as given (e.g. `docker run IMAGE python -m model --help`).
set -e
if [ "$#" -eq 0 ] || [ "$1" = "serve" ]; then
  exec gunicorn --config service/gunicorn.conf.py service.wsgi:app
fi
exec "$@"
