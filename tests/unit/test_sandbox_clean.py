"""redlab.sandbox.clean_stale on state folders alone (no namespaces needed)."""

import json
import os
import time

import pytest

from redlab import sandbox


@pytest.fixture(autouse=True)
def state(tmp_path, monkeypatch):
    monkeypatch.setenv("REDLAB_STATE_DIR", str(tmp_path))
    (tmp_path / "sandboxes").mkdir()
    return tmp_path / "sandboxes"


def test_a_sandbox_being_created_is_left_alone_and_an_old_ownerless_one_removed(state):
    young = state / "young-000001"
    young.mkdir()
    old = state / "old-000002"
    old.mkdir()
    past = time.time() - 3600
    os.utime(old, (past, past))
    report = sandbox.clean_stale()
    assert "sandbox young-000001 is being created: left alone" in report
    assert "sandbox old-000002: its namespaces were already gone" in report
    assert young.exists() and not old.exists()


def test_a_live_owner_keeps_its_sandbox_and_a_link_is_never_followed(state, tmp_path):
    live = state / "live-000003"
    live.mkdir()
    (live / "owner.json").write_text(json.dumps({"owner": sandbox._proc(os.getpid())}))
    target = tmp_path / "precious"
    target.mkdir()
    (state / "linked-000004").symlink_to(target)
    report = sandbox.clean_stale()
    assert report == ["sandbox live-000003 is running (pid %d): left alone" % os.getpid()]
    assert live.exists() and target.exists()


def test_a_sandbox_whose_owner_was_killed_is_removed_at_once(state):
    """What a worker killed with -9 leaves (its owner and init gone): removed however young."""
    dead = {"pid": 999999, "start": 1, "pidns": "pid:[1]"}
    crashed = state / "pytest-worke-000005"
    crashed.mkdir()
    (crashed / "owner.json").write_text(json.dumps({"owner": dead, "created": time.time()}))
    (crashed / "sandbox.json").write_text(json.dumps({"id": crashed.name, "init": dead}))
    (crashed / "runs").mkdir()
    assert sandbox.clean_stale() == [
        "sandbox pytest-worke-000005: its namespaces were already gone"]
    assert not crashed.exists()
