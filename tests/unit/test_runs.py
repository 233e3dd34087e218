"""redlab.runs: run folders, the registry and the network lock, all under tmp_path."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from redlab import runs
from redlab.errors import RedlabError

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def dirs(tmp_path, monkeypatch):
    monkeypatch.setenv("REDLAB_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("REDLAB_RUN_ROOT", str(tmp_path / "runs"))
    return tmp_path


def uptime():
    return float(Path("/proc/uptime").read_text().split()[0])


def registry_entry(run):
    return json.loads(run.registry_file.read_text())


def test_open_creates_the_run_folder_and_a_registry_entry_with_the_owner(dirs):
    run = runs.Run("demo").open()
    assert run.path.parent == dirs / "runs"
    assert run.path.is_dir()
    assert run.registry_file.parent == dirs / "state" / "runs"
    entry = registry_entry(run)
    assert entry["owner_pid"] == os.getpid()
    assert entry["id"] == run.id and run.id.endswith("-%d-demo" % os.getpid())


def test_record_and_forget_are_saved_at_once():
    run = runs.Run("demo").open()
    run.record("bridges", "s1")
    run.record("bridges", "s1")
    run.record("links", "s1-eth1")
    assert registry_entry(run)["bridges"] == ["s1"]
    assert registry_entry(run)["links"] == ["s1-eth1"]
    run.forget("bridges", "s1")
    assert registry_entry(run)["bridges"] == []
    assert registry_entry(run)["links"] == ["s1-eth1"]


def test_threads_recording_at_once_all_get_saved():
    """Threads of one run record at once (lab 04's restart_in_step starts two servers'
    scripts from a thread pool, each recording its process).  Their saves shared one
    ``.json.tmp``: one thread's rename took the file the other had just written, whose
    own rename then failed (FileNotFoundError on the .tmp, seen in CI)."""
    import threading
    run = runs.Run("threads").open()
    start, errors = threading.Barrier(4), []

    def record(n):
        start.wait()
        try:
            for i in range(100):
                run.record("files", "/x/%d-%d" % (n, i))
        except Exception as exc:     # noqa: BLE001 -- reported below
            errors.append(exc)
    threads = [threading.Thread(target=record, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors[:3]
    saved = registry_entry(run)["files"]
    assert sorted(saved) == sorted("/x/%d-%d" % (n, i) for n in range(4) for i in range(100))
    assert not list(run.registry_file.parent.glob("*.tmp"))
    run.close()


def test_recorded_process_is_the_same_process_only_while_it_lives():
    run = runs.Run("demo").open()
    child = subprocess.Popen(["sleep", "30"])
    try:
        entry = run.record_process(child.pid, "sleep in h1")
        assert entry["start"] == runs.proc_start_time(child.pid)
        assert entry["start"] / os.sysconf("SC_CLK_TCK") == pytest.approx(uptime(), abs=5)
        assert registry_entry(run)["processes"] == [entry]
        assert runs.same_process(child.pid, entry["start"])
        assert not runs.same_process(child.pid, entry["start"] - 1)
    finally:
        child.kill()
        child.wait()
    assert not runs.same_process(child.pid, entry["start"])
    run.forget_process(child.pid)
    assert registry_entry(run)["processes"] == []


def test_registered_runs_lists_open_runs_with_a_live_owner():
    run = runs.Run("demo").open()
    entries = runs.registered_runs()
    assert [e["id"] for e in entries] == [run.id]
    assert entries[0]["registry_file"] == str(run.registry_file)
    assert runs.owner_alive(entries[0])


def test_owner_of_an_entry_from_a_dead_process_is_not_alive():
    child = subprocess.Popen(["true"])
    start = runs.proc_start_time(child.pid)
    child.wait()
    assert not runs.owner_alive({"owner_pid": child.pid, "owner_start": start})


def test_corrupt_registry_entry_is_listed_with_its_error(dirs):
    (dirs / "state" / "runs").mkdir(parents=True)
    (dirs / "state" / "runs" / "broken.json").write_text("{not json")
    [entry] = runs.registered_runs()
    assert entry["id"] == "broken"
    assert entry["error"]
    assert entry["bridges"] == []


def test_close_removes_the_entry_and_keeps_state_in_the_run_folder():
    run = runs.Run("demo").open()
    run.record("bridges", "s1")
    run.close()
    assert not run.registry_file.exists()
    assert runs.registered_runs() == []
    state = json.loads((run.path / "state.json").read_text())
    assert state["bridges"] == ["s1"]
    run.record("bridges", "s2")         # after close: nothing goes back to the registry
    assert not run.registry_file.exists()


def test_odd_characters_in_a_run_name_are_sanitised(dirs):
    run = runs.Run("../my lab/ä:1")
    assert run.id.endswith("-..-my-lab-1")
    assert "/" not in run.id and " " not in run.id
    assert run.path.parent == dirs / "runs"


def test_empty_name_becomes_run():
    assert runs.Run("///").id.endswith("-%d-run" % os.getpid())


def test_file_and_folder_create_their_parents():
    run = runs.Run("demo")
    assert run.folder("web1", "nginx").is_dir()
    path = run.file("client1", "probe.jsonl")
    assert path.parent.is_dir() and not path.exists()


HOLD_LOCK = """
import sys
from redlab.runs import NetworkLock, Run
NetworkLock().acquire(Run("holder", folder=sys.argv[1]))
print("locked", flush=True)
sys.stdin.read()
"""


def test_second_network_lock_in_another_process_fails_naming_redlab_clean(dirs):
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(dirs / "holder-run")], cwd=REPO,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env=dict(os.environ, PYTHONPATH=str(REPO)))
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RedlabError) as info:
            runs.NetworkLock().acquire(runs.Run("second"))
        assert "redlab clean" in str(info.value)
        assert "pid %d" % holder.pid in str(info.value)
    finally:
        holder.stdin.close()
        holder.wait(timeout=5)
    lock = runs.NetworkLock()
    lock.acquire(runs.Run("third"))     # free again once the holder is gone
    lock.release()


def test_a_link_in_place_of_the_lock_is_refused_and_its_target_untouched(dirs):
    target = dirs / "precious"
    target.write_text("keep me\n")
    (dirs / "state").mkdir(mode=0o700)
    (dirs / "state" / "lock").symlink_to(target)
    with pytest.raises(RedlabError, match="must be a plain file of root's; remove it"):
        runs.NetworkLock().acquire(runs.Run("linked"))
    assert target.read_text() == "keep me\n"


def test_state_and_run_folders_are_private(dirs):
    run = runs.Run("private").open()
    assert os.stat(dirs / "state").st_mode & 0o777 == 0o700
    assert os.stat(run.path).st_mode & 0o777 == runs.RUN_MODE
    assert (run.path / runs.RUN_MARKER).read_text().strip() == run.id
    run.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="checks ownership as root")
def test_a_state_folder_of_another_user_is_refused(dirs):
    (dirs / "state").mkdir()
    os.chown(dirs / "state", 65534, 65534)
    with pytest.raises(RedlabError, match="is not a folder of root's"):
        runs.NetworkLock().acquire(runs.Run("theirs"))


def test_pruning_removes_only_old_run_folders_that_redlab_made(dirs):
    from redlab.clean import prune_run_folders
    made = [runs.Run("old%d" % i).open() for i in range(3)]
    for run in made:
        run.close()
    (dirs / "runs" / "grading-evidence").mkdir()          # not redlab's: no marker
    (dirs / "elsewhere").mkdir()
    (dirs / "elsewhere" / runs.RUN_MARKER).write_text("x")
    (dirs / "runs" / "a-link").symlink_to(dirs / "elsewhere")
    removed = prune_run_folders(keep=1)
    assert len(removed) == 2
    left = sorted(p.name for p in (dirs / "runs").iterdir())
    assert "grading-evidence" in left and "a-link" in left and len(left) == 3
    assert (dirs / "elsewhere" / runs.RUN_MARKER).exists()
