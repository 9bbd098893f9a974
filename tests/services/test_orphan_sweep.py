"""Dataset artifacts follow their row: DELETE removes them after the row's deletion commits, and the orphan
sweep (``tscout gc``) removes what a process killed between the artifact write and the commit left behind —
only past the grace period, and never what a row references."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time

from typer.testing import CliRunner

from app.cli import build_cli
from app.cli.gc import collect_garbage
from app.db.session import unit_of_work
from app.runtime import Runtime
from app.services.auth import local_principal
from app.services.datasets import create_dataset
from app.storage.sweep import Referenced, is_orphan
from tests.kits import REPO
from tests.kits.rankings import features_npz, upload


def _dataset_dirs(store) -> set[str]:
    return {key.split("/")[1] for key, _ in store.iter_files() if key.startswith("datasets/")}



def _kept_dataset(runtime, seed: int) -> str:
    """A committed dataset (its artifacts referenced by a row: never an orphan); its id."""
    import io

    from app.datasets.collected import IngestOptions

    with unit_of_work(runtime.sessions) as session:
        principal = local_principal(session, "kept")
        kept, _ = create_dataset(session, runtime.store, runtime.settings, principal.project_id,
                                 source=io.BytesIO(features_npz(seed=seed)), name="kept",
                                 options=IngestOptions(filename="kept.npz"))
        return str(kept.id)

def test_delete_removes_the_artifacts_after_the_row_commits(client, server):
    dataset_id = upload(client, features_npz(), "feats.npz")
    assert dataset_id in _dataset_dirs(server.runtime.store)
    assert client.delete(f"/v1/datasets/{dataset_id}").status_code == 204
    assert client.get(f"/v1/datasets/{dataset_id}").status_code == 404
    assert dataset_id not in _dataset_dirs(server.runtime.store)


KILLED_UPLOAD = textwrap.dedent("""
    import io, os, signal, sys
    from app.datasets.collected import IngestOptions
    from app.runtime import Runtime
    from app.services.auth import local_principal
    from app.services.datasets import create_dataset
    from app.settings import Settings

    runtime = Runtime.from_settings(Settings(database_url=sys.argv[1], storage_url=sys.argv[2],
                                             models_dir=sys.argv[3]))
    data = open(sys.argv[4], "rb").read()
    with runtime.sessions() as session:
        principal = local_principal(session, "killed")
        create_dataset(session, runtime.store, runtime.settings, principal.project_id, source=io.BytesIO(data),
                       name="killed", options=IngestOptions(filename="killed.npz"))
        print("written", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)  # between the artifact write and the commit
""")


def test_gc_removes_what_a_kill_between_write_and_commit_left(settings_factory, tmp_path):
    settings = settings_factory()
    payload = tmp_path / "feats.npz"
    payload.write_bytes(features_npz(seed=3))
    killed = subprocess.run([sys.executable, "-c", KILLED_UPLOAD, settings.database_url, settings.storage_url,
                             str(REPO / "models"), str(payload)], capture_output=True, text=True, timeout=300,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert killed.returncode == -9 and "written" in killed.stdout, killed.stderr[-2000:]

    runtime = Runtime.from_settings(settings)
    try:
        orphans = _dataset_dirs(runtime.store)
        assert len(orphans) == 1  # the artifacts are there, their row never committed
        kept_id = _kept_dataset(runtime, seed=4)
        runtime.store.put_bytes("elsewhere/note.txt", b"not ours to sweep")

        report = collect_garbage(runtime)  # default grace (an hour): everything is too young
        assert report.removed == [] and report.kept_recent >= 1
        assert _dataset_dirs(runtime.store) == orphans | {kept_id}

        old = time.time() - 10
        for key, _ in runtime.store.iter_files():
            os.utime(runtime.store.local_path(key), (old, old))
        result = CliRunner().invoke(build_cli(), ["gc", "--grace-seconds", "5", "--dry-run"],
                                    env={"TSCOUT_DATABASE_URL": settings.database_url,
                                         "TSCOUT_STORAGE_URL": settings.storage_url,
                                         "TSCOUT_MODELS_DIR": str(REPO / "models")})
        assert result.exit_code == 0, result.output
        assert "would remove" in result.output and _dataset_dirs(runtime.store) == orphans | {kept_id}

        report = collect_garbage(runtime, grace_seconds=5)
        assert report.removed and all(k.startswith(f"datasets/{next(iter(orphans))}/") for k in report.removed)
        assert _dataset_dirs(runtime.store) == {kept_id}
        assert runtime.store.exists("elsewhere/note.txt")
        assert not (runtime.store.local_path("datasets") / next(iter(orphans))).exists()
    finally:
        runtime.close()


def test_what_is_an_orphan():
    refs = Referenced(dataset_prefixes=frozenset({"datasets/a"}), keys=frozenset({"embeddings/ab/abcd.npy"}))
    assert not is_orphan("datasets/a/samples.bin", refs)
    assert is_orphan("datasets/b/samples.bin", refs)
    assert not is_orphan("embeddings/ab/abcd.npy", refs)
    assert is_orphan("embeddings/ab/abce.npy", refs)
    assert is_orphan("backbones/ab/abcd.safetensors", refs)
    assert is_orphan("datasets/a/.tmp-x1y2", refs)
    assert is_orphan("_health/0123", refs)
    assert not is_orphan("other/anything", refs)


def test_worker_start_sweeps_old_orphans_and_keeps_fresh_ones_and_referenced_ones(settings_factory):
    """``tscout worker`` (a real process) runs the sweep once at start, before its executor picks up work:
    an orphan older than TSCOUT_GC_GRACE_SECONDS goes; a fresh orphan, and an old artifact a row references,
    stay."""
    import signal
    import uuid


    settings = settings_factory()
    runtime = Runtime.from_settings(settings)
    try:
        kept_id = _kept_dataset(runtime, seed=5)
        old_orphan, fresh_orphan = str(uuid.uuid4()), str(uuid.uuid4())
        runtime.store.put_bytes(f"datasets/{old_orphan}/samples.bin", b"killed before its commit")
        runtime.store.put_bytes(f"embeddings/ab/{uuid.uuid4().hex}.npy", b"no row names this")
        old = time.time() - 3600
        for key, _ in runtime.store.iter_files():  # everything is old: the kept dataset's files too
            os.utime(runtime.store.local_path(key), (old, old))
        runtime.store.put_bytes(f"datasets/{fresh_orphan}/samples.bin", b"its commit may be on its way")
        before = {key for key, _ in runtime.store.iter_files()}

        worker = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "worker"], cwd=REPO, start_new_session=True,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, "PYTHONPATH": str(REPO), "TSCOUT_DATABASE_URL": settings.database_url,
                 "TSCOUT_STORAGE_URL": settings.storage_url, "TSCOUT_MODELS_DIR": str(REPO / "models"),
                 "TSCOUT_GC_GRACE_SECONDS": "600", "TSCOUT_UNIT_PROCESSES": "0", "TSCOUT_EXECUTOR": "local"})
        output: list[str] = []
        try:
            for line in worker.stdout:  # the sweep runs before the executor starts and says it is running
                output.append(line)
                if "running" in line:
                    break
            assert worker.poll() is None, "".join(output)[-3000:]
        finally:
            os.killpg(worker.pid, signal.SIGTERM)
            rest, _ = worker.communicate(timeout=120)
            output.append(rest)
        assert worker.returncode == 0, "".join(output)[-3000:]
        assert "removed 2 orphan artifact(s)" in "".join(output), "".join(output)[-3000:]

        after = {key for key, _ in runtime.store.iter_files()}
        assert _dataset_dirs(runtime.store) == {kept_id, fresh_orphan}
        assert before - after == {f"datasets/{old_orphan}/samples.bin"} | {
            k for k in before if k.startswith("embeddings/")}
        assert not (runtime.store.local_path("datasets") / old_orphan).exists()
    finally:
        runtime.close()
