"""The product path on a tiny model: train, kill -9 and resume, evaluate, export to MindIR, msrun data parallel."""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from safetensors.numpy import load_file

from conftest import TESTS_DIR, cli

ROOT = os.path.dirname(TESTS_DIR)
SMOKE = os.path.join(ROOT, "configs", "cpu_smoke.yaml")
# A 1-layer model on 64x32 images; 12 steps per epoch, a checkpoint every 2 steps.
TINY_RUN = [
    "model.image_size=[64,32]", "model.clip.embed_dim=32", "model.cmt_depth=1", "model.mlm_positions=8",
    "model.clip.vision={width: 32, layers: 1, heads: 2, patch_size: 16, stride_size: 16, image_size: [64, 32]}",
    "model.clip.text={width: 32, layers: 1, heads: 2, context_length: 77, vocab_size: 49408}",
    "prompts.vision_length=2", "prompts.text_length=2", "kan.hidden=8",
    "train.batch_size=8", "train.epochs=2", "train.checkpoint_every=2", "train.log_every=1",
    "eval.every=1", "eval.batch_size=16", "data.num_workers=2",
]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    from vpmnet.data.synth import generate

    root = str(tmp_path_factory.mktemp("synthetic"))
    generate(root, identities=30, images_per_identity=2, seed=3, size=(64, 32), val_identities=3,
             test_identities=3, workers=1, overwrite=True)
    return root


def _train_args(dataset, out, *extra):
    return ["train", "--config", SMOKE, "--output-dir", out, f"data.root={dataset}", *TINY_RUN, *extra]


@pytest.fixture(scope="module")
def trained(dataset, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("run") / "uninterrupted")
    result = cli(*_train_args(dataset, out))
    assert result.returncode == 0, result.stderr[-3000:]
    return out


def _weights(run):
    return load_file(os.path.join(run, "last.safetensors"))


def _record(run, name="last"):
    with open(os.path.join(run, f"{name}.json")) as f:
        return json.load(f)


def test_training_writes_checkpoints_log_and_curves(trained):
    files = set(os.listdir(trained))
    assert {"last.safetensors", "best.safetensors", "last.json", "best.json", "log.jsonl", "curves.png",
            "config.yaml", "tokenizer"} <= files
    last = _record(trained)
    assert last["state"]["global_step"] == 24 and last["state"]["epoch"] == 2
    evals = [json.loads(line) for line in open(os.path.join(trained, "log.jsonl")) if '"eval"' in line]
    assert [e["epoch"] for e in evals] == [1, 2]
    best = _record(trained, "best")["state"]["best"]
    assert best["R1"] == max(e["R1"] for e in evals)
    steps = [json.loads(line)["step"] for line in open(os.path.join(trained, "log.jsonl")) if '"loss"' in line]
    assert steps == list(range(1, 25))


def test_kill_9_and_resume_ends_where_an_uninterrupted_run_ends(dataset, trained, tmp_path):
    out = str(tmp_path / "killed")
    env = dict(os.environ, GLOG_v="3")
    proc = subprocess.Popen([sys.executable, "-m", "vpmnet.cli", *_train_args(dataset, out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.time() + 600
    # Kill mid-epoch, at whatever moment the process is in, once a checkpoint past step 4 exists.
    while time.time() < deadline:
        try:
            if _record(out)["state"]["global_step"] >= 5:
                break
        except (FileNotFoundError, json.JSONDecodeError, KeyError):
            pass
        assert proc.poll() is None, "training ended before it could be killed"
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = _record(out)["state"]["global_step"]
    assert 5 <= killed_at < 24
    result = cli(*_train_args(dataset, out), "--resume")
    assert result.returncode == 0, result.stderr[-3000:]
    a, b = _weights(trained), _weights(out)
    assert a.keys() == b.keys()
    for name in a:
        assert np.array_equal(a[name], b[name]), name
    assert _record(trained, "best")["state"]["best"] == _record(out, "best")["state"]["best"]
    # The log was cut back to the checkpoint and continued: every step once.
    steps = [json.loads(line)["step"] for line in open(os.path.join(out, "log.jsonl")) if '"loss"' in line]
    assert steps == list(range(1, 25))


def test_eval_command_writes_the_metrics(trained, tmp_path):
    path = tmp_path / "metrics.json"
    result = cli("eval", "--ckpt", trained, "--split", "val", "--json", path, "--i2t")
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads(path.read_text())
    assert set(metrics) >= {"R1", "R5", "R10", "mAP", "mINP", "i2t"}
    assert 0 <= metrics["mINP"] <= metrics["mAP"] <= 100 and metrics["R1"] <= metrics["R5"] <= metrics["R10"]
    # Model selection used the same split, so the numbers are those recorded for `best`.
    best = _record(trained, "best")["state"]["best"]
    assert metrics["R1"] == pytest.approx(best["R1"], abs=1e-6) and metrics["mAP"] == pytest.approx(best["mAP"], abs=1e-6)
    assert "R1" in result.stdout and "t2i" in result.stdout


def test_export_reloads_as_graphcell_with_equal_outputs(trained, tmp_path):
    out = str(tmp_path / "export")
    result = cli("export", "--ckpt", trained, "--out", out, "--check")
    assert result.returncode == 0, result.stderr[-3000:]
    assert {"image_encoder.mindir", "text_encoder.mindir", "manifest.json", "tokenizer"} <= set(os.listdir(out))
    manifest = json.load(open(os.path.join(out, "manifest.json")))
    assert manifest["image_size"] == [64, 32] and manifest["embed_dim"] == 32
    assert manifest["fingerprint"] == _record(trained, "best")["fingerprint"]
    line = [l for l in result.stdout.splitlines() if "max |difference|" in l][0]
    image_diff, text_diff = (float(x.rstrip(",")) for x in line.split("image ")[1].split(" text "))
    assert image_diff <= 1e-5 and text_diff <= 1e-5


def test_non_finite_losses_are_skipped_then_stop_the_run(dataset, tmp_path):
    out = str(tmp_path / "diverged")
    result = cli(*_train_args(dataset, out), "train.lr=1e30", "train.warmup_epochs=0", "train.grad_clip=0",
                 "train.max_nonfinite=3")
    assert result.returncode == 2
    assert "3 non-finite steps in a row; stopping" in result.stderr and "step skipped" in result.stderr
    state = _record(out)["state"]
    assert state["nonfinite"] == 3 and state["global_step"] <= 24


def test_run_ascend_dry_run_prints_the_msrun_command(tmp_path):
    run = subprocess.run(["bash", os.path.join(ROOT, "run_ascend.sh"), "--config", SMOKE, "--data-root", "/data",
                          "--output-dir", str(tmp_path / "out"), "--nodes", "2", "--node-rank", "1",
                          "--master-addr", "10.0.0.1", "--devices", "8", "--dry-run", "--", "train.epochs=3"],
                         capture_output=True, text=True,
                         env=dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]))
    assert run.returncode == 0, run.stderr
    command = run.stdout.split()
    assert command[0] == "msrun"
    for flag in ("--worker_num=16", "--local_worker_num=8", "--node_rank=1", "--master_addr=10.0.0.1", "--join=True"):
        assert flag in command
    assert command[command.index("train") - 1].endswith("cli.py")
    assert {"device=Ascend", "data.root=/data", "train.epochs=3"} <= set(command)
    # Without an NPU the real run refuses, naming what is missing.
    refused = subprocess.run(["bash", os.path.join(ROOT, "run_ascend.sh"), "--config", SMOKE], capture_output=True,
                             text=True, env=dict(os.environ, ASCEND_HOME_PATH=""))
    assert refused.returncode == 2 and "no Ascend NPU found" in refused.stderr


def test_unknown_config_key_lists_close_matches(dataset, tmp_path):
    result = cli(*_train_args(dataset, str(tmp_path / "x")), "train.epoch=3")
    assert result.returncode == 2 and "did you mean train.epochs" in result.stderr


@pytest.mark.skipif(shutil.which("msrun", path=os.path.dirname(sys.executable)) is None, reason="msrun not installed")
def test_msrun_two_workers_match_one_worker(dataset, tmp_path):
    """2 ranks x 4 samples must update like 1 rank x 8: same global batch, gathered losses, mean gradients.

    Tolerance: the ranks sum the gradient in a different order than one process does (float32, ~1e-7
    relative); Adam divides by sqrt(v) and so passes on at most lr per step for a near-zero gradient whose
    sign flips. Three steps at lr 1e-4 bound every parameter's difference by 3e-4; we expect far less.
    """
    args = ["--config", SMOKE, f"data.root={dataset}", *TINY_RUN, "train.max_steps=3", "train.lr=1e-4",
            "train.warmup_epochs=0", "eval.every=100", "data.num_workers=1"]
    single = str(tmp_path / "single")
    result = cli("train", "--output-dir", single, *args)
    assert result.returncode == 0, result.stderr[-3000:]
    double = str(tmp_path / "double")
    msrun = os.path.join(os.path.dirname(sys.executable), "msrun")
    script = os.path.join(ROOT, "src", "vpmnet", "cli.py")
    port = 8200 + os.getpid() % 500
    run = subprocess.run([msrun, "--worker_num=2", "--local_worker_num=2", f"--master_port={port}",
                          f"--log_dir={tmp_path / 'msrun_logs'}", "--join=True", "--cluster_time_out=300",
                          script, "train", "--output-dir", double, *args],
                         capture_output=True, text=True, timeout=900,
                         env=dict(os.environ, GLOG_v="3", PATH=os.path.dirname(sys.executable) + os.pathsep + os.environ["PATH"]))
    logs = "".join(open(os.path.join(tmp_path, "msrun_logs", f)).read()[-2000:]
                   for f in sorted(os.listdir(tmp_path / "msrun_logs")))
    assert run.returncode == 0, logs
    a, b = load_file(os.path.join(single, "best.safetensors")), load_file(os.path.join(double, "best.safetensors"))
    assert _record(double)["state"]["global_step"] == 3
    worst = max(float(np.abs(a[k] - b[k]).max()) for k in a)
    print(f"msrun 2 workers vs 1: max |parameter difference| {worst:.3g}")
    assert worst < 3e-4, sorted(((float(np.abs(a[k] - b[k]).max()), k) for k in a), reverse=True)[:8]
    # The gathered losses see the whole global batch on every rank: rank 0 logs the single run's values.
    # (MLM is this rank's share of the global mean, so it and the total differ.)
    logs = [[json.loads(l) for l in open(os.path.join(run_dir, "log.jsonl")) if '"loss"' in l]
            for run_dir in (single, double)]
    assert [e["step"] for e in logs[1]] == [1, 2, 3]
    for one, two in zip(*logs):
        for term in ("sdm", "id", "minp"):
            assert two[term] == pytest.approx(one[term], rel=1e-4, abs=1e-5), (one["step"], term)
