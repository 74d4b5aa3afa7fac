"""The task launcher: dedup by key, dependency order, retry-then-report, local == Ray.

The toy tasks record each call as a line in a file, so a test can count how often a task really
ran, in this process or in a Ray worker. The Ray tests share one local 2-CPU Ray instance
(started once per module, a few seconds).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from metaser.errors import MetaserError
from metaser.launch import LocalLauncher, RayLauncher, Task, check_shared_output, make_launcher, plan
from metaser.launch.report import format_done, render_summary


# ------------------------------------------------------------------------ toy tasks
def record(calls: str, name: str, value: float = 0.0) -> dict:
    """Append one line per call to ``calls``; the result carries the key metric."""
    with open(calls, "a") as f:
        f.write(json.dumps({"name": name, "pid": os.getpid()}) + "\n")
    print(f"task {name} says hello")  # captured into the log under Ray
    return {"metric": "ua", "value": value, "name": name}


def after(calls: str, name: str, needs: list[str]) -> dict:
    """Fails unless every task named in ``needs`` already ran (recorded in ``calls``)."""
    ran = [json.loads(x)["name"] for x in Path(calls).read_text().splitlines()] if Path(calls).is_file() else []
    missing = [n for n in needs if n not in ran]
    if missing:
        raise RuntimeError(f"{name} ran before {missing}")
    return record(calls, name, float(len(ran)))


def flaky(marker: str, fail_times: int) -> dict:
    """Fails its first ``fail_times`` calls (counted in the file ``marker``), then succeeds."""
    n = len(Path(marker).read_text()) if Path(marker).is_file() else 0
    with open(marker, "a") as f:
        f.write("x")
    if n < fail_times:
        raise ValueError(f"flaky failure number {n + 1}")
    return {"metric": "ua", "value": 1.0}


def dies(marker: str, times: int) -> dict:
    """Kills its own process (as a segfault or the OOM killer would) the first ``times`` calls."""
    n = len(Path(marker).read_text()) if Path(marker).is_file() else 0
    with open(marker, "a") as f:
        f.write("x")
    if n < times:
        os._exit(1)
    return {"metric": "ua", "value": 1.0}


def slow(calls: str, name: str, seconds: float, after: str) -> dict:
    """Starts, waits until task ``after`` has recorded (at most 60 s), then ``seconds`` more, then ends.

    Waiting for ``after`` keeps the order fixed however slowly the workers start (a cold Ray
    start in a fresh clone took seconds): ``name:end`` comes ``seconds`` after ``after``."""
    record(calls, name + ":start")
    deadline = time.time() + 60.0
    while after not in calls_of(Path(calls)) and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(seconds)
    return record(calls, name + ":end")


def torch_threads() -> dict:
    import torch

    return {"threads": torch.get_num_threads()}


def square(x: float) -> dict:
    return {"metric": "value", "value": x * x, "x": x}


def calls_of(path: Path) -> list[str]:
    return [json.loads(x)["name"] for x in path.read_text().splitlines()] if path.is_file() else []


def diamond(tmp: Path) -> list[Task]:
    """stage1 shared by two stage-2 tasks (listed twice, as two variants' plans would), then a report."""
    calls = str(tmp / "calls.jsonl")
    s1 = Task("s1", record, (calls, "s1", 0.5), label={"variant": "full", "fold": 1, "stage": "stage1"})
    return [
        s1,
        Task("a2", after, (calls, "a2", ["s1"]), deps=["s1"], label={"variant": "full", "fold": 1, "stage": "stage2"}),
        Task("s1", record, (calls, "s1", 0.5), label={"variant": "wo_co", "fold": 1, "stage": "stage1"}),
        Task("b2", after, (calls, "b2", ["s1"]), deps=["s1"], label={"variant": "wo_co", "fold": 1, "stage": "stage2"}),
        Task("report", after, (calls, "report", ["a2", "b2"]), deps=["a2", "b2"], label={"stage": "report"}),
    ]


# ------------------------------------------------------------------------------ plan
def test_plan_dedups_identical_tasks_and_orders_dependencies_first(tmp_path):
    unique, order = plan(diamond(tmp_path))
    assert sorted(unique) == ["a2", "b2", "report", "s1"]
    assert order[0] == "s1" and order[-1] == "report"
    assert unique["s1"].label["variant"] == "full"  # the first one's label is kept


def test_plan_refuses_one_key_for_different_work_missing_deps_and_cycles(tmp_path):
    with pytest.raises(MetaserError, match="two different tasks share the key 'k'"):
        plan([Task("k", square, (1.0,)), Task("k", square, (2.0,))])
    with pytest.raises(MetaserError, match="depends on 'nope', which is not in the plan"):
        plan([Task("k", square, (1.0,), deps=["nope"])])
    with pytest.raises(MetaserError, match="cycle"):
        plan([Task("a", square, (1.0,), deps=["b"]), Task("b", square, (1.0,), deps=["a"])])


def test_make_launcher_refuses_bad_options():
    with pytest.raises(MetaserError, match="--ray-address needs --launcher ray"):
        make_launcher("local", ray_address="auto")
    with pytest.raises(MetaserError, match="unknown launcher 'slurm'"):
        make_launcher("slurm")


def test_ray_launcher_without_ray_says_how_to_install_it(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_ray(name, *a, **kw):
        if name == "ray" or name.startswith("ray."):
            raise ImportError("No module named 'ray'")
        return real_import(name, *a, **kw)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    with pytest.raises(MetaserError) as e:
        make_launcher("ray")
    assert "pip install 'metaser[ray]'" in str(e.value)


# ----------------------------------------------------------------------------- local
def test_local_shared_key_runs_once_after_which_its_dependants_run(tmp_path):
    seen: list[str] = []
    res = LocalLauncher().run(diamond(tmp_path), on_done=lambda t, r: seen.append(t.key))
    assert calls_of(tmp_path / "calls.jsonl").count("s1") == 1
    assert all(r.ok for r in res.values()), res
    assert sorted(seen) == ["a2", "b2", "report", "s1"] and seen[0] == "s1" and seen[-1] == "report"
    assert res["s1"].result == {"metric": "ua", "value": 0.5, "name": "s1"} and res["s1"].attempts == 1


def test_local_failure_is_retried_once_then_reported_and_the_others_go_on(tmp_path):
    calls = str(tmp_path / "calls.jsonl")
    log = tmp_path / "logs" / "bad.log"
    tasks = [
        Task("bad", flaky, (str(tmp_path / "marker"), 5), log_path=str(log), label={"variant": "x", "stage": "stage1"}),
        Task("child", record, (calls, "child"), deps=["bad"], label={"variant": "x", "stage": "stage2"}),
        Task("other", record, (calls, "other"), label={"variant": "y", "stage": "stage1"}),
    ]
    res = LocalLauncher(retries=1).run(tasks)
    bad, child, other = res["bad"], res["child"], res["other"]
    assert not bad.ok and bad.attempts == 2 and bad.error == "ValueError: flaky failure number 2"
    assert (tmp_path / "marker").read_text() == "xx"  # two attempts, no third
    text = log.read_text()
    assert "attempt 1/2" in text and "attempt 2/2" in text and "flaky failure number 1" in text
    assert bad.log_path == str(log) and str(log) in format_done(tasks[0], bad)
    assert not child.ok and child.error == "dependency bad failed" and child.attempts == 0
    assert calls_of(Path(calls)) == ["other"] and other.ok


def test_local_retry_that_succeeds_is_ok_with_two_attempts(tmp_path):
    res = LocalLauncher(retries=1).run([Task("t", flaky, (str(tmp_path / "marker"), 1))])
    assert res["t"].ok and res["t"].attempts == 2


def test_summary_table_lists_every_task_with_its_status(tmp_path):
    from rich.console import Console

    tasks = [
        Task("ok", square, (3.0,), label={"variant": "v[1]", "fold": 1}),
        Task("bad", flaky, (str(tmp_path / "m"), 9), label={"variant": "v2", "fold": 2}),
    ]
    res = LocalLauncher(retries=0).run(tasks)
    console = Console(record=True, width=200)
    console.print(render_summary(tasks, res, title="grid"))
    out = console.export_text()
    assert "grid: 1 ok, 1 failed" in out and "v[1]" in out and "value 9.0000" in out
    assert "ValueError: flaky failure number 1" in out


def test_check_shared_output_local_creates_the_directory_and_leaves_nothing(tmp_path):
    check_shared_output(tmp_path / "runs" / "x", LocalLauncher())
    assert list((tmp_path / "runs" / "x").iterdir()) == []
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(MetaserError, match="cannot write the output directory"):
        check_shared_output(tmp_path / "file" / "runs", LocalLauncher())


# ------------------------------------------------------------------------------- ray
@pytest.fixture(scope="module")
def ray_launcher():
    ray = pytest.importorskip("ray")
    if not ray.is_initialized():
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    yield RayLauncher(cpus_per_task=1, retries=1)
    ray.shutdown()


def test_ray_equals_local_on_toy_tasks(tmp_path, ray_launcher):
    tasks = [Task(f"sq{i}", square, (float(i),), label={"fold": i}) for i in range(4)]
    tasks.append(Task("sum", square, (0.5,), deps=[f"sq{i}" for i in range(4)]))
    local = LocalLauncher().run(tasks)
    remote = ray_launcher.run(tasks)
    assert list(remote) == list(local)
    assert {k: (r.ok, r.result, r.attempts) for k, r in remote.items()} == {
        k: (r.ok, r.result, r.attempts) for k, r in local.items()
    }


def test_ray_shared_key_runs_once_and_dependants_wait_for_it(tmp_path, ray_launcher):
    for t in (tasks := diamond(tmp_path)):
        t.log_path = str(tmp_path / "logs" / f"{t.key}.log")
    done: list[str] = []
    res = ray_launcher.run(tasks, on_done=lambda t, r: done.append(t.key))
    assert all(r.ok for r in res.values()), {k: r.error for k, r in res.items()}
    assert calls_of(tmp_path / "calls.jsonl").count("s1") == 1
    assert sorted(done) == ["a2", "b2", "report", "s1"]  # on_done once per distinct task
    assert "task s1 says hello" in (tmp_path / "logs" / "s1.log").read_text()  # stdout captured in the log


def test_ray_failure_is_retried_once_then_reported_and_the_others_go_on(tmp_path, ray_launcher):
    calls = str(tmp_path / "calls.jsonl")
    log = tmp_path / "bad.log"
    tasks = [
        Task("bad", flaky, (str(tmp_path / "marker"), 5), log_path=str(log)),
        Task("child", record, (calls, "child"), deps=["bad"]),
        Task("other", record, (calls, "other")),
    ]
    res = ray_launcher.run(tasks)
    assert (res["bad"].ok, res["bad"].attempts, res["bad"].log_path) == (False, 2, str(log))
    assert "flaky failure number 2" in log.read_text()
    assert (res["child"].ok, res["child"].error) == (False, "dependency bad failed")
    assert res["other"].ok and calls_of(Path(calls)) == ["other"]


def test_ray_retries_a_task_whose_worker_died_once_then_reports_it(tmp_path, ray_launcher):
    calls = str(tmp_path / "calls.jsonl")
    tasks = [
        Task("once", dies, (str(tmp_path / "m1"), 1)),
        Task("always", dies, (str(tmp_path / "m2"), 9)),
        Task("child", record, (calls, "child"), deps=["always"]),
        Task("other", record, (calls, "other")),
    ]
    res = ray_launcher.run(tasks)
    assert res["once"].ok and (tmp_path / "m1").read_text() == "xx"
    assert not res["always"].ok and res["always"].error.startswith("WorkerCrashedError")
    assert (tmp_path / "m2").read_text() == "xx"  # one retry, no more
    assert res["child"].error == "dependency always failed" and res["other"].ok


def test_ray_ctrl_c_cancels_the_remaining_tasks(tmp_path, ray_launcher):
    calls = str(tmp_path / "calls.jsonl")
    tasks = [
        Task("quick", record, (calls, "quick")),
        Task("slow", slow, (calls, "slow", 4.0, "quick")),
        Task("later", record, (calls, "later"), deps=["slow"]),
    ]

    def interrupt(task, _res):
        if task.key == "quick":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ray_launcher.run(tasks, on_done=interrupt)
    time.sleep(5.0)  # longer than the slow task would take after "quick"
    ran = calls_of(Path(calls))
    assert "quick" in ran and "slow:end" not in ran and "later" not in ran


def test_ray_task_uses_as_many_torch_threads_as_it_has_cpus(ray_launcher):
    # a worker process serves several tasks: the second one must not inherit the first one's threads
    for cpus in (2, 1, 2):
        res = RayLauncher(cpus_per_task=cpus).run([Task("t", torch_threads)])
        assert res["t"].result == {"threads": cpus}


def test_ray_check_shared_output_passes_on_one_machine(tmp_path, ray_launcher):
    check_shared_output(tmp_path / "out", ray_launcher)
    assert list((tmp_path / "out").iterdir()) == []


def test_a_worker_on_another_filesystem_is_a_clear_error(tmp_path):
    from metaser.launch.shared import judge_probes as _judge_probes

    (tmp_path / "mine").write_text("this machine sees it")
    ok = {"host": "node-a", "seen": True, "wrote": "mine", "error": None}
    elsewhere = {"host": "node-b", "seen": False, "wrote": "theirs", "error": None}  # its own /tmp, say
    _judge_probes(tmp_path, [ok])
    (tmp_path / "mine").write_text("again")
    with pytest.raises(MetaserError) as e:
        _judge_probes(tmp_path, [ok, elsewhere])
    assert "is not shared with every Ray worker (node-b: writes to a different filesystem" in e.value.message
    assert "a filesystem every worker sees" in e.value.hint
    assert list(tmp_path.iterdir()) == []  # probes removed


def test_ray_refuses_more_gpus_per_task_than_any_node_has(tmp_path, ray_launcher):
    launcher = RayLauncher(gpus_per_task=64)
    with pytest.raises(MetaserError, match="no node of the Ray cluster has that many GPUs"):
        launcher.run([Task("t", square, (1.0,))])
