"""The Snakefile's hooks and the lock: what a run says at its end is true, and a stale lock is recognised
(and only a stale one)."""

import json
import os
import shutil
import socket
import subprocess
import time

from speechrecipe.cli import lock
from speechrecipe.cli.hooks import error_message, failed_jobs, success_message

FAILED_LOG = """Building DAG of jobs...
[Mon Dec  7 16:36:18 2026]
Error in rule prepare_data:
    message: None
    jobid: 9
    output: data/k/train/wav.scp
    log: exp/prepare/k/log/prepare.log (check log file(s) for error details)
    shell:
        run_local kaldi --out-dir data/k
        (command exited with non-zero exit code)
[Mon Dec  7 16:36:19 2026]
Error in rule decode:
    jobid: 12
    log: exp/tiny/decode_dev/log/decode.log (check log file(s) for error details)
Exiting because a job execution failed. Look above for error messages
"""


def test_the_error_message_names_each_failed_job_and_its_log(tmp_path):
    (tmp_path / "run.log").write_text(FAILED_LOG)
    assert failed_jobs([tmp_path / "run.log"]) == [
        ("prepare_data", "exp/prepare/k/log/prepare.log"),
        ("decode", "exp/tiny/decode_dev/log/decode.log"),
    ]
    message = error_message([str(tmp_path / "run.log")])
    assert "2 job(s) failed" in message and "decode: its log is exp/tiny/decode_dev/log/decode.log" in message


def test_an_error_without_a_failed_job_does_not_claim_one(tmp_path):
    (tmp_path / "run.log").write_text(
        "Building DAG of jobs...\nBUG: Out of jobs ready to be started, but not all jobs are finished.\n"
    )
    message = error_message(str(tmp_path / "run.log"))
    assert "no job failed" in message and "job(s) failed" not in message and str(tmp_path / "run.log") in message


def test_results_are_named_only_when_this_run_has_them_up_to_date(tmp_path):
    results = [str(tmp_path / "results.tsv"), str(tmp_path / "RESULTS.md")]
    inputs = [str(tmp_path / "history.tsv"), str(tmp_path / "decode_dev/wer")]
    assert "Results" not in success_message(results, inputs)  # an experiment that does not exist
    (tmp_path / "history.tsv").write_text("x")
    time.sleep(0.01)
    for path in results:
        open(path, "w").close()
    assert "Results: " + " and ".join(results) in success_message(results, inputs)
    time.sleep(0.01)
    (tmp_path / "history.tsv").write_text("retrained, results not made again (--until train_am)")
    assert "Results" not in success_message(results, inputs)


# --- the lock ---------------------------------------------------------------------------------------------


def locked(workdir):
    (workdir / ".snakemake/locks").mkdir(parents=True)
    (workdir / ".snakemake/locks/0.output.lock").write_text("exp/x\n")


def write_record(workdir, **record):
    path = workdir / ".snakemake" / lock.OWNER
    path.write_text(json.dumps(record))
    return path


def test_no_lock(tmp_path):
    assert lock.lock_state(tmp_path)[0] == "none"


def test_a_lock_whose_process_is_gone_is_stale(tmp_path):
    locked(tmp_path)
    dead = subprocess.Popen(["true"])
    dead.wait()
    write_record(tmp_path, host=socket.gethostname(), boot=lock._boot_id(), pid=dead.pid, started="1")
    assert lock.lock_state(tmp_path)[0] == "stale"


def test_a_lock_held_by_a_live_process_or_another_host_or_nobody_known_is_left(tmp_path):
    locked(tmp_path)
    assert lock.lock_state(tmp_path) == ("unknown", "the lock has no record of who holds it")
    me = os.getpid()
    write_record(tmp_path, host=socket.gethostname(), boot=lock._boot_id(), pid=me, started=lock._start_time(me))
    state, why = lock.lock_state(tmp_path)
    assert state == "held" and str(me) in why
    write_record(tmp_path, host="login2.cluster", boot="x", pid=1, started="1")
    state, why = lock.lock_state(tmp_path)
    assert state == "held" and "login2.cluster" in why
    # A record older than the lock is some earlier run's, not the lock holder's.
    record = write_record(tmp_path, host=socket.gethostname(), boot="old boot", pid=1, started="1")
    old = time.time() - 60
    os.utime(record, (old, old))
    assert lock.lock_state(tmp_path)[0] == "unknown"


def test_a_snakemake_working_in_the_directory_holds_the_lock_whatever_the_record_says(tmp_path):
    locked(tmp_path)
    write_record(tmp_path, host=socket.gethostname(), boot="old boot", pid=1, started="1")
    fake = tmp_path / "bin" / "snakemake"
    fake.parent.mkdir()
    shutil.copy(shutil.which("sleep"), fake)
    running = subprocess.Popen([str(fake), "30"], cwd=tmp_path)
    try:
        deadline = time.time() + 10
        while lock.lock_state(tmp_path)[0] != "held" and time.time() < deadline:
            time.sleep(0.05)
        state, why = lock.lock_state(tmp_path)
        assert state == "held" and str(running.pid) in why
    finally:
        running.kill()
        running.wait()
    assert lock.lock_state(tmp_path)[0] == "stale"
