"""/metrics over real gunicorn workers: counts are summed across workers (multiprocess mode)."""

from concurrent.futures import ThreadPoolExecutor

import requests
from prometheus_client.parser import text_string_to_metric_families


def scrape(url: str) -> dict:
    """{(sample name, sorted labels): value} of one /metrics scrape."""
    response = requests.get(url + "/metrics", timeout=5)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def delta(before: dict, after: dict, name: str, **labels) -> float:
    key = (name, tuple(sorted(labels.items())))
    return after.get(key, 0.0) - before.get(key, 0.0)


def test_counts_sum_across_workers(gunicorn_server):
    from sklearn.datasets import load_digits

    url = gunicorn_server.url
    data = load_digits()
    rows, n = data.data[:60].tolist(), 60
    before = scrape(url)

    def one(row):
        response = requests.post(url + "/predict", json={"instances": [row]}, timeout=10)
        assert response.status_code == 200
        return response.json()["predictions"][0]["label"]

    with ThreadPoolExecutor(max_workers=6) as pool:
        labels = list(pool.map(one, rows))
    bad = [requests.post(url + "/predict", json={"instances": []}, timeout=5) for _ in range(3)]
    assert all(r.status_code == 400 for r in bad)
    # Several scrapes may land on different workers: each must see every worker's samples.
    scrapes = [scrape(url) for _ in range(4)]
    after = scrapes[-1]
    for other in scrapes[:-1]:
        assert (
            delta(before, other, "http_requests_total", endpoint="/predict", method="POST", status="200") == n
        )

    assert delta(before, after, "http_requests_total", endpoint="/predict", method="POST", status="400") == 3
    assert delta(before, after, "errors_total", code="invalid_input") == 3
    assert delta(before, after, "http_request_duration_seconds_count", endpoint="/predict", status="200") == n
    assert (
        delta(
            before,
            after,
            "http_request_duration_seconds_bucket",
            endpoint="/predict",
            status="200",
            le="+Inf",
        )
        == n
    )
    assert delta(before, after, "http_request_duration_seconds_sum", endpoint="/predict", status="200") > 0
    for label in set(labels):
        assert delta(before, after, "predictions_total", label=str(label)) == labels.count(label)

    version = requests.get(url + "/model", timeout=5).json()["version"]
    assert after[("model_info", (("name", "digits"), ("version", version)))] == 1.0
    # Both workers really wrote samples (one file per worker pid and metric type).
    pids = {path.stem.rsplit("_", 1)[-1] for path in gunicorn_server.metrics_dir.glob("counter_*.db")}
    assert len(pids) >= 2, pids
