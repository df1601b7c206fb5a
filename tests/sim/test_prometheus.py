"""Running the real Prometheus binary (``couchestor.sim.prometheus``): ready and scraped before use, stopped
on exit and on cancellation, and clear errors when it cannot run."""

from __future__ import annotations

import httpx
import pytest
import trio

from couchestor.sim.prometheus import PrometheusStartError, open_prometheus, prometheus_config
from couchestor.sim.workload import ExportOptions, Kind, Pattern, Workload, serve_workload


async def _workload(nursery) -> str:
    workload = Workload(seed=1)
    workload.add_volume("pvc-a", Pattern(Kind.CONSTANT, base=1200.0))
    return await nursery.start(
        lambda task_status: serve_workload(
            workload, options=ExportOptions(), step=1.0, task_status=task_status
        )
    )


@pytest.mark.prometheus
async def test_prometheus_is_scraped_before_use_and_stopped_after(nursery, tmp_path):
    url = await _workload(nursery)
    async with open_prometheus([f"{url}/metrics"], home=tmp_path, scrape_interval=1.0) as prometheus:
        assert prometheus.version.startswith("2.")
        async with httpx.AsyncClient(timeout=10) as client:
            answer = await client.post(
                f"{prometheus.url}/api/v1/query", data={"query": "openebs_volume_iops"}
            )
        result = answer.json()["data"]["result"]
        assert [r["metric"]["volume_id"] for r in result] == ["pvc-a"]  # the first scrape is in
        assert "scrape_interval: 1s" in (tmp_path / "prometheus.yml").read_text()
        process = prometheus.process
    assert process.returncode is not None
    assert (tmp_path / "data").is_dir()


@pytest.mark.prometheus
async def test_cancelling_the_owner_stops_prometheus(nursery):
    url = await _workload(nursery)
    started = trio.Event()
    processes = []

    async def owner():
        async with open_prometheus([f"{url}/metrics"]) as prometheus:
            processes.append(prometheus.process)
            started.set()
            await trio.sleep_forever()

    with trio.move_on_after(60):
        async with trio.open_nursery() as inner:
            inner.start_soon(owner)
            await started.wait()
            inner.cancel_scope.cancel()
    assert processes
    assert processes[0].returncode is not None


async def test_a_missing_binary_is_a_start_error():
    with pytest.raises(PrometheusStartError, match="not on PATH"):
        async with open_prometheus(binary="no-such-prometheus-binary"):
            pass


@pytest.mark.prometheus
async def test_a_prometheus_that_exits_is_a_start_error_with_its_log():
    with pytest.raises(PrometheusStartError, match="exited with status") as caught:
        async with open_prometheus(extra_args=["--no-such-flag"]):
            pass
    assert "no-such-flag" in str(caught.value)


def test_config_scrapes_each_target_path_as_its_own_job():
    text = prometheus_config(["http://127.0.0.1:1/metrics", "127.0.0.1:2", "http://127.0.0.1:3/other"], 2.0)
    assert "scrape_interval: 2s" in text
    assert "targets: ['127.0.0.1:1', '127.0.0.1:2']" in text
    assert "metrics_path: /other" in text
    assert "job_name: workload-1" in text


@pytest.mark.prometheus
async def test_backfilled_history_and_bare_scrapes_form_one_series_per_volume(nursery, tmp_path):
    import time

    from couchestor.sim.workload import write_history

    workload = Workload(seed=1)
    workload.add_volume("pvc-a", Pattern(Kind.CONSTANT, base=1200.0))
    url = await nursery.start(
        lambda task_status: serve_workload(
            workload, options=ExportOptions(), step=1.0, task_status=task_status
        )
    )
    history = tmp_path / "history.om"
    now = time.time()
    with history.open("w") as out:
        write_history(workload, out, start=now - 30, end=now, step=1.0, options=ExportOptions())
    async with (
        open_prometheus(
            [f"{url}/metrics"], home=tmp_path / "p", history=history, bare_series=True
        ) as prometheus,
        httpx.AsyncClient(timeout=10) as client,
    ):
        answer = await client.post(
            f"{prometheus.url}/api/v1/query",
            data={"query": "count_over_time(openebs_volume_iops[30s])"},
        )
    result = answer.json()["data"]["result"]
    # One series (no job/instance labels on the scraped samples), holding the backfilled samples and the scrape.
    assert [r["metric"] for r in result] == [{"volume_id": "pvc-a"}]
    assert float(result[0]["value"][1]) >= 20


@pytest.mark.prometheus
async def test_a_restart_on_a_fixed_port_keeps_the_url_and_the_samples(nursery, tmp_path):
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = await _workload(nursery)

    async def scraped_at(base: str) -> set[float]:
        async with httpx.AsyncClient(timeout=10) as client:
            answer = await client.post(f"{base}/api/v1/query", data={"query": "openebs_volume_iops[10m]"})
        return {value[0] for series in answer.json()["data"]["result"] for value in series["values"]}

    async with open_prometheus([f"{url}/metrics"], home=tmp_path, port=port) as first:
        await trio.sleep(2.5)
        before = await scraped_at(first.url)
    async with open_prometheus([f"{url}/metrics"], home=tmp_path, port=port) as second:
        assert second.url == first.url == f"http://127.0.0.1:{port}"
        after = await scraped_at(second.url)
    assert len(before) >= 2
    assert before <= after  # the first run's samples survive the restart
