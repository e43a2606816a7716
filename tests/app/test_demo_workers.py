"""The demo runs its pre-training and fine-tuning jobs in worker processes: results come back in the
order given, failures surface in the caller, and the worker count is the user's to choose."""

import operator

import pytest

from sclbench.app import demo


def test_calls_run_in_worker_processes_and_come_back_in_order():
    calls = [(operator.pow, 2, 10), (operator.pow, 3, 3), (operator.add, 1, 2)]
    assert demo._run_all(calls, workers=2) == [1024, 27, 3]
    assert demo._run_all(calls, workers=1) == [1024, 27, 3]


def test_a_failing_job_raises_in_the_caller():
    with pytest.raises(ValueError, match="invalid literal"):
        demo._run_all([(operator.neg, 1), (int, "not a number")], workers=2)


def test_worker_count(monkeypatch):
    monkeypatch.setenv("SCLBENCH_DEMO_WORKERS", "3")
    assert demo.demo_workers() == 3
    monkeypatch.delenv("SCLBENCH_DEMO_WORKERS")
    assert 1 <= demo.demo_workers() <= 2


def test_every_task_has_a_cost_for_scheduling():
    assert all(spec.cost > 0 for spec in demo.demo_tasks().values())
