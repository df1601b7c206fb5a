"""KubectlCluster drives kubectl as a subprocess: arguments, stdin, output, failures and timeouts.

A small shell script stands in for kubectl: it records its arguments and stdin and prints what the test says.
"""

from __future__ import annotations

import pytest
import yaml

from couchestor.volumes.cluster import KubectlCluster, KubectlError

FAKE = """#!/bin/sh
printf '%s\\n' "$@" > "$FAKE_DIR/args"
cat > "$FAKE_DIR/stdin"
[ -n "${FAKE_SLEEP:-}" ] && exec sleep "$FAKE_SLEEP"
printf '%s' "${FAKE_STDOUT:-}"
printf '%s' "${FAKE_STDERR:-}" >&2
exit "${FAKE_EXIT:-0}"
"""


@pytest.fixture
def fake(tmp_path, monkeypatch):
    script = tmp_path / "kubectl"
    script.write_text(FAKE)
    script.chmod(0o755)
    monkeypatch.setenv("FAKE_DIR", str(tmp_path))
    cluster = KubectlCluster(kubeconfig="/k/config", context="kind-test", kubectl=str(script), call_timeout=5)
    return cluster, tmp_path


def _args(tmp_path) -> list[str]:
    return (tmp_path / "args").read_text().splitlines()


async def test_apply_sends_the_objects_on_stdin_with_the_users_kubeconfig_and_context(fake):
    cluster, tmp_path = fake
    documents = [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "b"}, "data": {"x": "1\n---\n2"}},
    ]
    await cluster.apply(documents)
    expected = "--kubeconfig /k/config --context kind-test apply -f - -o name"
    assert _args(tmp_path) == expected.split()
    assert list(yaml.safe_load_all((tmp_path / "stdin").read_text())) == documents


async def test_get_decodes_the_object_and_returns_none_when_absent(fake, monkeypatch):
    cluster, tmp_path = fake
    assert await cluster.get("pvc", "data", "ns") is None
    assert _args(tmp_path)[4:] == ["get", "pvc", "data", "-o", "json", "--ignore-not-found", "-n", "ns"]
    monkeypatch.setenv("FAKE_STDOUT", '{"status": {"phase": "Bound"}}')
    assert await cluster.get("pvc", "data", "ns") == {"status": {"phase": "Bound"}}
    assert await cluster.get("storageclass", "fast-ssd", None) is not None
    assert "-n" not in _args(tmp_path)


async def test_list_and_logs(fake, monkeypatch):
    cluster, tmp_path = fake
    monkeypatch.setenv("FAKE_STDOUT", '{"items": [{"metadata": {"name": "p"}}]}')
    assert await cluster.list("pod", "ns", "job-name=j") == [{"metadata": {"name": "p"}}]
    assert _args(tmp_path)[4:] == ["get", "pod", "-n", "ns", "-l", "job-name=j", "-o", "json"]
    monkeypatch.setenv("FAKE_STDOUT", "line 1\nline 2\n")
    assert await cluster.logs("p", "ns") == "line 1\nline 2\n"
    assert _args(tmp_path)[4:] == ["logs", "-n", "ns", "pod/p", "--tail=-1"]


async def test_kubectl_failure_carries_its_message(fake, monkeypatch):
    cluster, _ = fake
    monkeypatch.setenv("FAKE_EXIT", "1")
    monkeypatch.setenv(
        "FAKE_STDERR", 'Error from server (Forbidden): pods is forbidden: User "x" cannot list'
    )
    with pytest.raises(
        KubectlError, match=r"kubectl get pod -n ns .* failed: Error from server \(Forbidden\)"
    ):
        await cluster.list("pod", "ns", "a=b")


async def test_output_that_is_not_json_is_an_error(fake, monkeypatch):
    cluster, _ = fake
    monkeypatch.setenv("FAKE_STDOUT", "No resources found")
    with pytest.raises(KubectlError, match="something other than JSON"):
        await cluster.get("pvc", "x", "ns")


async def test_a_hanging_kubectl_is_stopped_at_the_call_timeout(fake, monkeypatch):
    cluster, _ = fake
    monkeypatch.setenv("FAKE_SLEEP", "30")
    quick = KubectlCluster(kubectl=cluster.kubectl, call_timeout=0.3)
    with pytest.raises(KubectlError, match=r"did not finish within 0\.3 s"):
        await quick.get("pvc", "x", "ns")


async def test_a_missing_kubectl_is_a_user_error(tmp_path):
    cluster = KubectlCluster(kubectl=str(tmp_path / "no-kubectl"))
    with pytest.raises(KubectlError, match="was not found; install kubectl or pass --kubectl PATH"):
        await cluster.get("pvc", "x", "ns")


KLOG = (
    'E1123 10:26:11.253405   14880 memcache.go:265] "Unhandled Error" err="couldn\'t get current server API '
    'group list: Get \\"http://127.0.0.1:9/api?timeout=32s\\": dial tcp 127.0.0.1:9: connect: connection refused"'
)


@pytest.mark.parametrize(
    ("stderr", "expected"),
    [
        (
            f"{KLOG}\n{KLOG}\nThe connection to the server 127.0.0.1:9 was refused - did you specify the right host?\n",
            "failed: The connection to the server 127.0.0.1:9 was refused - did you specify the right host?",
        ),
        (f"{KLOG}\n", 'failed: "Unhandled Error" err="couldn\'t get current server API group list'),
        ("error: one\nerror: two\n", "failed: error: one; error: two"),
    ],
)
async def test_kubectl_errors_become_one_line_without_its_log_lines(fake, monkeypatch, stderr, expected):
    cluster, _ = fake
    monkeypatch.setenv("FAKE_EXIT", "1")
    monkeypatch.setenv("FAKE_STDERR", stderr)
    with pytest.raises(KubectlError) as caught:
        await cluster.get("storageclass", "fast-ssd", None)
    message = str(caught.value)
    assert "\n" not in message
    assert expected in message
    assert "memcache.go" not in message
