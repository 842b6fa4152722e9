"""End-to-end ``kmtpe search``: digits, generated CIFAR files, resume after SIGKILL, bad input."""

from __future__ import annotations

import json
import os
from pathlib import Path
import re
import signal
import subprocess
import sys
import time
from typing import Any

import numpy as np
import optuna
import pandas as pd
import pytest
import torch

from optuna_kmtpe._runs.search_run import run_search
from optuna_kmtpe._runs.search_run import SearchConfig
from optuna_kmtpe._runs.search_run import SearchError
from optuna_kmtpe._runs.search_run import summary_text
from optuna_kmtpe._search.objective import trained_params
from optuna_kmtpe._zoo.models import zoo_cost_model
from optuna_kmtpe.cli import main
from tests._logs import captured_logs
from tests.cifar_format import write_cifar10


torch.set_num_threads(1)
REPO = Path(__file__).resolve().parents[1]
# Small but complete runs: every step of the pipeline, a few seconds each.
TINY = [
    "--base-epochs", "2", "--epochs", "1", "--final-epochs", "1", "--trials", "4",
    "--startup", "2", "--hessian-samples", "3", "--hessian-batches", "1", "--no-progress",
    "--pruner", "none",
]  # fmt: skip


def _tiny(out: Path, **kw: Any) -> SearchConfig:
    base = dict(
        base_epochs=2,
        epochs=1,
        final_epochs=1,
        trials=4,
        startup=2,
        hessian_samples=3,
        hessian_batches=1,
        out=str(out),
        progress=False,
        pruner="none",
    )
    base.update(kw)
    return SearchConfig(**base)  # type: ignore[arg-type]


def _study(out: Path, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{out / 'study.db'}")


def test_search_on_digits_end_to_end(tmp_path: Path) -> None:
    result = run_search(_tiny(tmp_path, sampler="kmeans-tpe"))
    assert result.dataset_label == "scikit-learn digits (offline default)"
    assert result.feasible and result.trial is not None
    assert result.layers == ["conv1", "conv2", "fc1", "fc2"]
    assert result.bits is not None and len(result.bits) == 4
    assert result.widths is not None and result.widths[-1] == 1.0  # classifier never scaled
    assert result.size_mb is not None and result.size_mb <= result.limits["size_mb"]
    assert result.test_accuracy is not None and result.accuracy == result.test_accuracy
    assert result.n_trials == 4 and result.n_complete == 4
    # Files: results table of every trial, best configuration, plots, the models.
    for name in ("results.csv", "best_config.json", "history.png", "accuracy_vs_size.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    report = (tmp_path / "report.html").read_text()
    assert "plotly" in report[:200000]
    assert f"chosen      trial {result.trial}" in report and "limits      size_mb" in report
    table = pd.read_csv(tmp_path / "results.csv")
    assert table["trial"].tolist() == [0, 1, 2, 3]
    for col in ("state", "value", "accuracy", "size_mb", "speedup", "latency_ms", "bits/fc1"):
        assert col in table.columns
    best = json.loads((tmp_path / "best_config.json").read_text())
    assert best["dataset"] == "scikit-learn digits (offline default)"
    assert best["bits"] == result.bits
    row = table[table["trial"] == result.trial].iloc[0]
    assert row["accuracy"] == max(table[table["feasible"]]["accuracy"])
    # The stored study carries the space and the dataset label.
    study = _study(tmp_path, "kmtpe-small_cnn-digits")
    assert study.user_attrs["kmtpe:dataset_label"] == result.dataset_label
    for layer, b in zip(result.layers, result.bits):
        assert b in json.loads(study.user_attrs["kmtpe:space"])["bits"][layer]


def test_search_cli_on_generated_cifar(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_cifar10(tmp_path / "data", per_batch=24, test=24)
    argv = ["search", "--dataset", "cifar10", "--data-dir", str(tmp_path / "data")]
    argv += ["--model", "resnet20", "--out", str(tmp_path / "run"), "--json", *TINY]
    argv += ["--trials", "3", "--batch-size", "32", "--objective", "constraints"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    for key in ("bits", "widths", "accuracy", "size_mb", "speedup"):
        assert out[key] is not None, key
    assert out["dataset_label"].startswith("CIFAR-10 (torchvision")
    assert len(out["bits"]) == 20 and out["model"] == "resnet20"
    study = _study(tmp_path / "run", "kmtpe-resnet20-cifar10")
    assert all("size_mb" in t.constraints for t in study.trials)  # constraints objective


def test_pareto_objective_and_random_sampler(tmp_path: Path) -> None:
    result = run_search(
        _tiny(tmp_path, objective="pareto", sampler="random", final_epochs=0, trials=3),
    )
    study = _study(tmp_path, "kmtpe-small_cnn-digits")
    assert len(study.directions) == 2
    assert result.test_accuracy is None and result.accuracy == result.val_accuracy


def test_diverging_candidate_fails_and_study_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Call 1 trains the base model; call 2 the first candidate.
    _poison_training_call(monkeypatch, 2)
    with captured_logs() as logs:
        result = run_search(_tiny(tmp_path, final_epochs=0))
    states = [t.state.name for t in _study(tmp_path, "kmtpe-small_cnn-digits").trials]
    assert states.count("FAIL") == 1 and states.count("COMPLETE") == 3  # the study went on
    failed = states.index("FAIL")
    assert result.n_failed == 1 and result.feasible and result.trial != failed
    assert any(f"trial {failed} FAILED: diverged: Training loss became nan" in m for m in logs)
    table = pd.read_csv(tmp_path / "results.csv")
    assert table.loc[failed, "fail_reason"].startswith("diverged")


def test_resume_after_sigkill_loses_no_finished_trial(tmp_path: Path) -> None:
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "optuna_kmtpe.cli", "search", "--out", str(out), *TINY]
    cmd += ["--trials", "10", "--epochs", "2", "--final-epochs", "0"]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    storage = f"sqlite:///{out / 'study.db'}"
    # Watch the atomically rewritten results.csv, not the database: a second connection
    # while the child creates the SQLite schema makes the child fail to open its storage.
    results = out / "results.csv"
    deadline = time.time() + 300  # every trial trains now (warm start, repair): slower
    try:
        while time.time() < deadline and proc.poll() is None:
            time.sleep(0.1)
            if results.exists() and (pd.read_csv(results)["state"] == "COMPLETE").sum() >= 3:
                break
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read() if proc.stderr else ""
    killed = optuna.load_study(study_name="kmtpe-small_cnn-digits", storage=storage)
    before = {
        t.number: (t.params, t.value)
        for t in killed.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    }
    assert 3 <= len(before) < 10
    # The same options without --resume refuse to overwrite the study; with it they resume.
    config = _tiny(out, trials=10, epochs=2, final_epochs=0)
    with pytest.raises(SearchError, match="already exists.*Pass --resume"):
        run_search(config)
    config.resume = True
    with captured_logs() as logs:
        run_search(config)
    study = optuna.load_study(study_name="kmtpe-small_cnn-digits", storage=storage)
    complete = {t.number: (t.params, t.value) for t in study.trials if t.state.name == "COMPLETE"}
    for number, params_value in before.items():
        assert complete[number] == params_value  # nothing finished before the kill is lost
    assert len(complete) == 10  # the study reaches its count
    # A trial the kill interrupted was marked failed and re-run with the parameters it had
    # (a kill between two suggestions leaves some for the retry to suggest); one killed
    # before its first suggestion has nothing to re-run, and the count is filled anyway.
    for t in study.trials:
        if t.user_attrs.get("interrupted"):
            retry = [r for r in study.trials if r.user_attrs.get("retry_of") == t.number]
            assert len(retry) == (1 if t.params else 0)
            for r in retry:
                assert {k: r.params[k] for k in t.params} == t.params
    assert any("base model: loaded" in m for m in logs)
    assert any("read from the study" in m for m in logs)


def test_requeue_reruns_interrupted_trials_that_had_parameters() -> None:
    from optuna_kmtpe._search.study import requeue_interrupted

    study = optuna.create_study()
    with_params = study.ask()
    with_params.suggest_int("w", 1, 8)
    study.ask()  # killed before its first suggestion
    n = requeue_interrupted(study, study._storage, fail_running=True)
    assert n == 1
    states = [t.state.name for t in study.trials]
    assert states == ["FAIL", "FAIL", "WAITING"]
    assert all(t.user_attrs.get("interrupted") for t in study.trials[:2])
    assert study.trials[2].user_attrs["retry_of"] == with_params.number
    assert study.trials[2].params == {} and study.trials[2].system_attrs["fixed_params"] == {
        "w": with_params.params["w"]
    }
    assert requeue_interrupted(study, study._storage, fail_running=True) == 0  # already queued


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--model", "vgg99"], "Unknown model 'vgg99'; known models: resnet20"),
        (["--dataset", "mnist"], "Unknown dataset 'mnist'; known datasets: digits"),
        (["--dataset", "cifar10", "--data-dir", "{tmp}/none"], "not found.*--download"),
        (["--model", "resnet20"], "cannot take this dataset's images"),
        (["--size-limit-mb", "0.0001"], "No configuration in the search space meets size_mb"),
        (["--resume"], "Nothing to resume"),
        (["--trials", "0"], "`trials` must be a positive integer"),
    ],
)
def test_bad_input_exits_2_with_a_clear_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    extra = [e.replace("{tmp}", str(tmp_path)) for e in extra]
    code = main(["search", "--out", str(tmp_path / "run"), *TINY, *extra])
    err = capsys.readouterr().err
    assert code == 2
    assert re.search(message, err), err


def test_checkpoint_not_matching_the_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from optuna_kmtpe._zoo.models import build_model

    ckpt = tmp_path / "five_classes.pt"
    torch.save(build_model("small_cnn", 5).state_dict(), ckpt)
    code = main(["search", "--out", str(tmp_path / "run"), "--checkpoint", str(ckpt), *TINY])
    err = capsys.readouterr().err
    assert code == 2
    assert "fc2.weight: checkpoint (5, 64) vs model (10, 64)" in err
    (tmp_path / "junk.pt").write_bytes(b"junk")
    code = main(
        ["search", "--out", str(tmp_path / "r2"), "--checkpoint", str(tmp_path / "junk.pt")]
    )
    assert code == 2 and "Cannot read checkpoint" in capsys.readouterr().err


def test_no_configuration_met_the_limits_is_said_at_the_end(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # An impossible limit is refused before any search, naming the best reachable size ...
    argv = ["search", *TINY, "--trials", "3", "--startup", "3"]
    # The former defaults: the paper's space, no warm start, infeasible proposals untrained
    # (the defaults repair them, so every trial is feasible).
    argv += ["--space-rule", "paper", "--no-warm-start", "--infeasible", "penalty"]
    assert main([*argv, "--out", str(tmp_path / "a"), "--size-limit-mb", "1e-6"]) == 2
    found = re.search(r"best reachable: ([0-9.e+-]+)", capsys.readouterr().err)
    assert found is not None
    # ... a limit that only the very cheapest configurations meet is attainable, but 3 seeded
    # random trials miss it: the run finishes and says so (exit status 3).
    limit = float(found.group(1)) * 1.01
    code = main([*argv, "--out", str(tmp_path / "b"), "--size-limit-mb", f"{limit:.8g}"])
    captured = capsys.readouterr()
    assert code == 3
    assert "NO CONFIGURATION MET THE LIMITS" in captured.out
    result = json.loads((tmp_path / "b" / "result.json").read_text())
    assert result["feasible"] is False and "No configuration met the limits" in result["message"]


def test_resume_with_other_limits_is_refused(tmp_path: Path) -> None:
    # The trials' feasibility was judged against the study's limits; resuming under other
    # limits would mix two judgements in one study and could choose a trial that breaks them.
    run_search(_tiny(tmp_path, trials=2, final_epochs=0))
    study = _study(tmp_path, "kmtpe-small_cnn-digits")
    limit = study.user_attrs["kmtpe:limits"]["size_mb"]
    config = _tiny(tmp_path, trials=3, final_epochs=0, resume=True, size_limit_mb=2 * limit)
    with pytest.raises(SearchError, match="run with the limits"):
        run_search(config)
    assert len(_study(tmp_path, "kmtpe-small_cnn-digits").trials) == 2
    config.size_limit_mb = None  # the same (default) limit as the first run: resumes
    assert run_search(config).n_trials == 3


def test_diverging_final_training_keeps_the_search_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The base model, two candidates, then the final model (no re-scores).
    calls = _poison_training_call(monkeypatch, 4)
    result = run_search(_tiny(tmp_path, trials=2, startup=2, size_limit_mb=1.0, rescore=0))
    assert calls["n"] == 4 and result.feasible and result.test_accuracy is None
    assert result.accuracy == result.val_accuracy and "final training diverged" in result.message
    assert json.loads((tmp_path / "result.json").read_text())["message"] == result.message
    assert not (tmp_path / "final_model.pt").exists()


def _poison_training_call(monkeypatch: pytest.MonkeyPatch, call: int) -> dict[str, int]:
    """Make the ``call``-th ``train`` of the pipeline start from NaN weights (it diverges);
    returns the live count of ``train`` calls."""
    import optuna_kmtpe._zoo.train as train_module

    real_train = train_module.train
    calls = {"n": 0}

    def poisoned(model: torch.nn.Module, data: Any, **kw: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == call:
            with torch.no_grad():
                next(model.parameters()).fill_(float("nan"))
        return real_train(model, data, **kw)

    monkeypatch.setattr(train_module, "train", poisoned)
    return calls


def test_search_never_trains_a_configuration_twice(tmp_path: Path) -> None:
    # k-means TPE on a small space (2 clusters) repeats itself; repeats reuse, not train.
    result = run_search(_tiny(tmp_path, trials=12, final_epochs=0, n_clusters=2))
    trials = _study(tmp_path, "kmtpe-small_cnn-digits").trials
    assert result.n_trials == 12 and all(t.state.name == "COMPLETE" for t in trials)
    trained = [
        (tuple(t.user_attrs["bits"]), tuple(t.user_attrs["widths"]))
        for t in trials
        if t.user_attrs["trained"] and "reused_from_trial" not in t.user_attrs
    ]
    assert len(trained) == len(set(trained))  # 100% distinct among trained trials
    for t in trials:
        if "reused_from_trial" in t.user_attrs:
            twin = trials[t.user_attrs["reused_from_trial"]]
            assert (twin.user_attrs["bits"], twin.user_attrs["widths"]) == (
                t.user_attrs["bits"],
                t.user_attrs["widths"],
            )
            assert t.value == twin.value and "train_seconds" not in t.user_attrs


def test_cost_model_choice_prices_the_chosen_configuration(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["search", "--out", str(tmp_path), *TINY, "--trials", "2", "--final-epochs", "0"]
    assert main([*argv, "--sampler", "random", "--cost-model", "compute"]) == 0
    assert "(compute-bound cost model, --cost-model)" in capsys.readouterr().out
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["cost_model"] == "compute"
    compute = zoo_cost_model("small_cnn", 10, dram_gbps=None)
    memory = zoo_cost_model("small_cnn", 10)
    widths = result["widths"]
    assert result["speedup"] == pytest.approx(compute.evaluate(result["bits"], widths).speedup)
    assert result["speedup"] != pytest.approx(memory.evaluate(result["bits"], widths).speedup)


def test_rescoring_is_saved_printed_and_reported(tmp_path: Path) -> None:
    result = run_search(_tiny(tmp_path, rescore=3, rescore_repeats=2, final_epochs=0))
    saved = json.loads((tmp_path / "result.json").read_text())["rescoring"]
    assert saved == json.loads((tmp_path / "best_config.json").read_text())["rescoring"]
    assert 1 <= len(saved) <= 3 + 1  # the best 3, and the speed reference
    study = _study(tmp_path, "kmtpe-small_cnn-digits")
    for c in saved:
        t = study.trials[c["trial"]]
        assert c["params"] == trained_params(t)
        assert c["bits"] == dict(zip(result.layers, t.user_attrs["bits"]))
        assert c["widths"] == dict(zip(result.layers, t.user_attrs["widths"]))
        assert len(c["scores"]) == 3 and c["scores"][0] == t.user_attrs["accuracy"]
        assert c["mean"] == pytest.approx(np.mean(c["scores"]))
        assert c["sd"] == pytest.approx(np.std(c["scores"], ddof=1))
    means = [c["mean"] for c in saved]
    assert means == sorted(means, reverse=True)
    chosen = next(c for c in saved if c["trial"] == result.trial)
    assert result.rescored_val_accuracy == chosen["mean"]
    # speed-band (the default): the fastest configuration within the band of the best mean.
    within = [c for c in saved if c["mean"] >= saved[0]["mean"] - result.tie_band - 1e-12]
    assert chosen["speedup"] == max(c["speedup"] for c in within)
    text = summary_text(result)
    assert f"* trial {result.trial:<4} mean {chosen['mean']:.4f}" in text
    assert f"chosen: the fastest within {result.tie_band:.4f} of the best mean" in text
    for layer, bits in zip(result.layers, result.bits or []):
        assert re.search(rf"^ +{layer} +{bits} +", text, re.M), layer
    report = (tmp_path / "report.html").read_text()
    assert f"* trial {result.trial:<4} mean" in report


def test_ebops_limit_is_met_and_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cost = zoo_cost_model("small_cnn", 10)
    limit = cost.evaluate(4).ebops * 1.5  # part of the space meets it
    argv = ["search", "--out", str(tmp_path), *TINY, "--final-epochs", "0"]
    assert main([*argv, "--ebops", f"{limit:.10g}"]) == 0
    out = capsys.readouterr().out
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["limits"] == {"ebops": pytest.approx(limit)}  # no default size limit added
    assert result["feasible"]
    ebops = cost.evaluate(result["bits"], result["widths"]).ebops
    assert result["ebops"] == ebops <= limit
    assert f"EBOPs       {ebops:.4g}" in out
