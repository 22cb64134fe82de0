"""`pacsim down` removes the last run you started, never a compose project (issue 18).

The containers are made here with the docker SDK from the local pacsim image
(``sleep``, no pacsim process), labelled as `pacsim up` and `docker compose up`
label theirs: one older and one newer run of "mine", one run of another user, and
one container of a compose project. Each case checks what is left on the engine.
"""

from __future__ import annotations

import argparse
import io
import time
from typing import Any, Iterator

import pytest

from simulators.cli.runtime import register
from simulators.runtime import engine
from simulators.runtime.engine import (
    COMPOSE_PROJECT_LABEL, DEFAULT_PACSIM_IMAGE, OWNER_LABEL, RUN_LABEL, plan_down,
    remove_by_label,
)

OTHER = "someone-else@elsewhere"


def run(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="pacsim")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


@pytest.fixture
def runs(docker: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """Four labelled sleeping containers; returns their run ids by role. "Me" is a
    user of this test alone: CI's other docker tests run as the same real user."""
    stamp = f"{int(time.time() * 1000) % 10**8:08d}"
    me = f"dockertest-{stamp}@here"
    monkeypatch.setattr(engine, "owner", lambda: me)
    ids = {"old": f"dockertest-old-{stamp}", "new": f"dockertest-new-{stamp}",
           "other": f"dockertest-other-{stamp}", "compose": f"dockertest-compose-{stamp}"}
    labels = {"old": {OWNER_LABEL: me}, "new": {OWNER_LABEL: me},
              "other": {OWNER_LABEL: OTHER},
              "compose": {OWNER_LABEL: me, COMPOSE_PROJECT_LABEL: f"proj{stamp}"}}
    for role in ("old", "other", "compose", "new"):  # "new" is created last
        docker.containers.run(DEFAULT_PACSIM_IMAGE, ["sleep", "300"], detach=True,
                              entrypoint=[], name=ids[role],
                              labels={RUN_LABEL: ids[role], **labels[role]})
        time.sleep(1.1)  # Created has sub-second precision; keep the order unambiguous
    try:
        yield ids
    finally:
        for run_id in ids.values():
            remove_by_label(docker, run_id)


def left(docker: Any, ids: dict[str, str]) -> set[str]:
    found = {c.labels.get(RUN_LABEL) for c in docker.containers.list(
        all=True, filters={"label": RUN_LABEL}, ignore_removed=True)}
    return {role for role, run_id in ids.items() if run_id in found}


def test_down_alone_removes_only_my_last_run(docker: Any, runs: dict[str, str], capsys) -> None:
    assert run("down") == 0
    assert left(docker, runs) == {"old", "other", "compose"}
    out = capsys.readouterr().out
    assert f"run {runs['new']}: removed 1 container(s)" in out
    assert "docker compose project" in out  # says why it left that one alone
    assert run("down") == 0  # then the one before it
    assert left(docker, runs) == {"other", "compose"}


def test_down_run_id_removes_that_run_only(docker: Any, runs: dict[str, str]) -> None:
    assert run("down", "--run", runs["other"]) == 0
    assert left(docker, runs) == {"old", "new", "compose"}
    with pytest.raises(engine.ConfigError, match="no pacsim run"):  # compose's: not ours
        run("down", "--run", runs["compose"])
    assert left(docker, runs) == {"old", "new", "compose"}


def test_down_all_asks_and_never_touches_compose(docker: Any, runs: dict[str, str],
                                                 monkeypatch: pytest.MonkeyPatch,
                                                 capsys) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("n\n"))
    assert run("down", "--all") == 1
    assert "other users' included? [y/N]" in capsys.readouterr().out
    assert left(docker, runs) == set(runs)  # "n": nothing removed
    # What "y" would remove (not answered here: the engine is shared with other
    # tests, whose runs --all would take too): every run but the compose project's.
    chosen = set(plan_down(docker, every=True).runs)
    assert {runs["old"], runs["new"], runs["other"]} <= chosen
    assert runs["compose"] not in chosen
