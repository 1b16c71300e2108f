"""Settings.from_env: defaults, every variable, and clear errors for bad values."""

import pytest

from service.config import ConfigError, Settings


def test_defaults():
    s = Settings.from_env({})
    assert (s.model_store, s.model_name, s.model_alias, s.model_version) == (
        "store",
        "digits",
        "production",
        None,
    )
    assert (s.port, s.workers, s.max_batch, s.max_body_bytes) == (8080, 2, 1000, 1024 * 1024)
    assert s.address == "127.0.0.1:8080"
    assert (s.worker_class, s.read_timeout) == ("buffered", 10.0)
    assert (s.model_format, s.pickle_free) == ("auto", False)  # unpickle; ONNX when the version has it
    # Must stay below the ECS container stopTimeout (30 s) so in-flight requests can finish.
    assert s.graceful_timeout < 30 and s.graceful_timeout < s.timeout


def test_every_variable_is_read():
    s = Settings.from_env(
        {
            "MODEL_STORE": "s3://bucket/models",
            "MODEL_NAME": "iris",
            "MODEL_ALIAS": "staging",
            "MODEL_VERSION": "20260101T000000Z-0123abcd",
            "MODEL_CACHE_DIR": "/var/cache/m",
            "PORT": "9000",
            "WEB_CONCURRENCY": "4",
            "MAX_BATCH": "10",
            "MAX_BODY_BYTES": "2048",
            "LOG_LEVEL": "debug",
            "GUNICORN_TIMEOUT": "40",
            "GUNICORN_GRACEFUL_TIMEOUT": "25",
            "PIDFILE": "/run/g.pid",
            "PROMETHEUS_MULTIPROC_DIR": "/tmp/m",
            "MODEL_LOAD_WAIT": "3",
            "MODEL_RETRY_INITIAL": "0.1",
            "MODEL_RETRY_MAX": "5",
            "WORKER_CLASS": "Gevent",
            "READ_TIMEOUT": "2.5",
            "MODEL_FORMAT": "ONNX",
        }
    )
    assert s == Settings(
        model_store="s3://bucket/models",
        model_name="iris",
        model_alias="staging",
        model_version="20260101T000000Z-0123abcd",
        model_cache_dir="/var/cache/m",
        port=9000,
        workers=4,
        max_batch=10,
        max_body_bytes=2048,
        log_level="DEBUG",
        timeout=40,
        graceful_timeout=25,
        pidfile="/run/g.pid",
        prometheus_multiproc_dir="/tmp/m",
        load_wait=3.0,
        retry_initial=0.1,
        retry_max=5.0,
        worker_class="gevent",
        read_timeout=2.5,
        model_format="onnx",
    )
    assert s.pickle_free


@pytest.mark.parametrize(
    ("env", "address"),
    [
        ({"BIND": "0.0.0.0"}, "0.0.0.0:8080"),
        ({"BIND": "0.0.0.0", "PORT": "80"}, "0.0.0.0:80"),
        ({"BIND": "[::]:9000"}, "[::]:9000"),
        ({"HOST": "0.0.0.0", "PORT": "81"}, "0.0.0.0:81"),
        ({"BIND": "", "PORT": "82"}, "127.0.0.1:82"),
    ],
)
def test_bind_address(env, address):
    assert Settings.from_env(env).address == address


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PORT": "http"}, "PORT must be an integer, got 'http'"),
        ({"PORT": "70000"}, "PORT must be at most 65535"),
        ({"WEB_CONCURRENCY": "0"}, "WEB_CONCURRENCY must be at least 1"),
        ({"MAX_BATCH": "-5"}, "MAX_BATCH must be at least 1"),
        ({"MAX_BODY_BYTES": "1"}, "MAX_BODY_BYTES must be at least 64"),
        ({"LOG_LEVEL": "loud"}, "LOG_LEVEL must be one of"),
        ({"WORKER_CLASS": "threads"}, "WORKER_CLASS must be one of buffered, sync, gevent"),
        ({"READ_TIMEOUT": "0"}, "READ_TIMEOUT must be above 0 seconds"),
        ({"MODEL_FORMAT": "pickle"}, "MODEL_FORMAT must be one of auto, onnx"),
        ({"MODEL_FORMAT": "joblib"}, "got 'joblib'"),
        ({"GUNICORN_GRACEFUL_TIMEOUT": "30"}, "must be below GUNICORN_TIMEOUT (30)"),
        ({"MODEL_LOAD_WAIT": "x"}, "MODEL_LOAD_WAIT must be a number of seconds"),
        ({"MODEL_LOAD_WAIT": "45"}, "MODEL_LOAD_WAIT (45.0) must be below GUNICORN_TIMEOUT"),
    ],
)
def test_bad_values_name_the_variable(env, message):
    with pytest.raises(ConfigError, match=None) as info:
        Settings.from_env(env)
    assert message in str(info.value)


def test_settings_are_immutable():
    s = Settings.from_env({})
    with pytest.raises(AttributeError):
        s.port = 1
