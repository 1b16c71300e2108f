"""Scripted stand-ins for the rollout tests: a boto3 ECS client answering a script, a model store
with conditional alias moves, and HTTP servers answering GET /model (well, or badly)."""

from __future__ import annotations

import http.server
import json
import socket
import threading

from botocore.exceptions import ClientError

DIGEST = "sha256:" + "ab" * 32


def deployment(td, state, running=1, desired=1, failed=0, status="PRIMARY"):
    return {"id": f"ecs-svc/{td[-1]}", "status": status, "taskDefinition": td, "rolloutState": state,
            "rolloutStateReason": "circuit breaker tripped" if state == "FAILED" else "",
            "runningCount": running, "desiredCount": desired, "failedTasks": failed}


class FakeEcs:
    """A boto3 ECS client whose describe_services answers follow a script (then repeat the last)."""

    def __init__(self, script, fail_update_on=None):
        self.script = list(script)
        self.td = "arn:td/old:1"
        self.updates, self.registered, self.deregistered = [], [], []
        self.fail_update_on = fail_update_on

    def describe_clusters(self, clusters):
        return {"clusters": [{"clusterName": clusters[0], "status": "ACTIVE"}]}

    def describe_services(self, cluster, services):
        step = self.script.pop(0) if len(self.script) > 1 else self.script[0]
        deployments = step(self) if callable(step) else step
        return {"services": [{"serviceName": services[0], "status": "ACTIVE", "taskDefinition": self.td,
                              "desiredCount": 1, "runningCount": 1, "deployments": deployments}]}

    def describe_task_definition(self, taskDefinition):
        return {"taskDefinition": {
            "taskDefinitionArn": taskDefinition, "family": "svc", "revision": 1, "status": "ACTIVE",
            "containerDefinitions": [{"name": "model-service", "image": "repo@" + DIGEST,
                                      "environment": [{"name": "MODEL_VERSION", "value": "v-old"}]}]}}

    def register_task_definition(self, **definition):
        self.registered.append(definition)
        return {"taskDefinition": {**definition, "taskDefinitionArn": "arn:td/new:2"}}

    def deregister_task_definition(self, taskDefinition):
        self.deregistered.append(taskDefinition)

    def update_service(self, cluster, service, taskDefinition, forceNewDeployment):
        if taskDefinition == self.fail_update_on:
            raise ClientError({"Error": {"Code": "AccessDeniedException", "Message": "not allowed"}},
                              "UpdateService")
        self.updates.append(taskDefinition)
        self.td = taskDefinition
        return {"service": {"serviceName": service, "taskDefinition": taskDefinition}}

    def list_tasks(self, **_):
        return {"taskArns": []}


class FakeStore:
    """Only what the rollout asks of a ModelStore: aliases with conditional moves, manifests, metrics."""

    def __init__(self, metrics=None):
        from model.store import Alias

        self.Alias = Alias
        self.production = Alias("production", "v-old", None, "t", "e1")
        self.metrics = metrics or {"v-old": 0.95, "v-new": 0.96, "v-theirs": 0.97}
        self.moves = []

    def resolve(self, name, alias=None, version=None):
        from model.errors import NotFoundError

        if version:
            return version
        if self.production is None:
            raise NotFoundError(f"alias {alias} of {name} is not set")
        return self.production.version

    def manifest(self, name, version, verifier=None):
        return {"name": name, "version": version, "metrics": {"macro_f1": self.metrics[version]},
                "classes": [0, 1],
                "input_schema": {"type": "tabular", "features": ["a", "b"], "n_features": 2}}

    def alias(self, name, alias):
        return self.production

    def move_alias(self, name, alias, version, expected="read"):
        from model.errors import ConflictError

        if expected != "read" and getattr(expected, "etag", None) != getattr(self.production, "etag", None):
            raise ConflictError(f"alias {alias} was moved meanwhile")
        self.moves.append(version)
        self.production = self.Alias(alias, version, self.production and self.production.version, "t",
                                     f"e{len(self.moves) + 1}")
        return self.production

    def promote_by_someone_else(self, version="v-theirs"):
        self.production = self.Alias("production", version, self.production.version, "t", "theirs")


class VersionServer:
    """A real HTTP server on 127.0.0.1 answering GET /model with a settable version."""

    def __init__(self):
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                body = json.dumps({"name": "digits", "version": owner.version}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.version = "v-new"
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def run_scripted(fake, *, store=None, url=None, timeout=30.0, **kwargs):
    """Plan and execute an ECS rollout against scripted answers; (the error or None, progress lines)."""
    from deploy.ecs import EcsClient
    from deploy.rollout.core import Rollout
    from deploy.rollout.ecs import EcsRequest, plan_ecs

    now = [0.0]
    lines = []
    store = store or FakeStore()
    request = EcsRequest(cluster="c", service="s", promote="v-new", image_digest="repo@" + DIGEST,
                         service_url=url, timeout=timeout, rollback_timeout=timeout, poll=5,
                         verify_timeout=3, verify_consecutive=3, **kwargs)
    try:
        target, move = plan_ecs(request, EcsClient(fake), None, store, log=lines.append,
                                clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s))
        Rollout(target, store=store, alias_move=move, log=lines.append).execute()
        return None, lines
    except Exception as exc:
        return exc, lines


def new_deployment(state, **kw):
    return lambda fake: [deployment(fake.td, state, **kw)]


class UnsetAliasStore(FakeStore):
    """A store whose alias was never set: alias() answers None until something moves it."""

    def __init__(self):
        super().__init__()
        self.production = None
        self.expected = []

    def move_alias(self, name, alias, version, expected="read"):
        self.expected.append(expected)
        self.moves.append(version)
        self.production = self.Alias(alias, version, None, "t", "e1")
        return self.production


class RawServer:
    """A TCP server on 127.0.0.1 that answers every connection with the same raw bytes, then closes.

    For answers no HTTP library would send: a garbage status line, a body shorter than its
    Content-Length, a connection closed before any answer.
    """

    def __init__(self, answer: bytes):
        self.answer = answer
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(2)
                try:
                    conn.recv(65536)
                    conn.sendall(self.answer)
                except OSError:
                    pass

    def close(self):
        self.sock.close()


class RefusingS3:
    """A real boto3 S3 client (to the moto server) that refuses some operations the way AWS does when
    a policy denies them: botocore's own ClientError with AWS's code. moto itself accepts any
    credentials and every write, so this is how a read-only role is played here."""

    def __init__(self, client, refuse: dict[str, str]):
        self._client = client
        self._refuse = refuse  # boto3 method name -> the error code AWS answers with
        self.calls = []

    def __getattr__(self, operation):
        method = getattr(self._client, operation)

        def call(**kwargs):
            self.calls.append((operation, kwargs.get("Key")))
            if operation in self._refuse:
                error = {"Error": {"Code": self._refuse[operation], "Message": "denied by policy"},
                         "ResponseMetadata": {"HTTPStatusCode": 403}}
                raise ClientError(error, operation)
            return method(**kwargs)

        return call
