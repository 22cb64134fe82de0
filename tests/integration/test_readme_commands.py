"""Every command in the README's ``sh`` blocks works as written (issue 18, item 4).

The README is the user's manual; a command in it that fails is a bug. This module reads
every fenced ``sh`` block of README.md, one command per line (``\\`` continuations
joined), and every command must be classified below exactly once:

* run here, as written, in a scratch folder where ``examples/``, ``scenarios/`` and
  ``compose/`` are the repository's and ``pacsim`` is this checkout; a few run with an
  explicit substitution (a free port for a fixed one, fewer studies), each with its reason;
* a server (``serve``, ``sandbox up``): started, used by the commands after it, stopped;
* documentation only: a placeholder host (``pacs.example``), the suite itself, or
  Docker images, each with its reason and, where there is one, the test that covers it.

A new README command fails :func:`test_every_readme_command_is_classified` until it
is put in one of these lists. Commands run in README order; one that needs an earlier
one (``legacy serve`` after ``legacy seed``) runs it first when selected alone.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import pytest

from tests.helpers import require_tool

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
LINKED = ("examples", "scenarios", "compose", "fixtures")


# ---------------------------------------------------------------------- reading the README
def readme_commands(text: str | None = None) -> list[tuple[int, str]]:
    """(line number, command) for each command of each ```sh block, comments stripped."""
    text = README.read_text(encoding="utf-8") if text is None else text
    commands: list[tuple[int, str]] = []
    inside, pending, start = False, "", 0
    for number, line in enumerate(text.splitlines(), 1):
        if line.startswith("```"):
            inside = line.strip() == "```sh"
            continue
        if not inside:
            continue
        code = re.sub(r"\s+#(\s.*)?$", "", line).rstrip()
        if not pending:
            start = number
        if code.endswith("\\"):
            pending += code[:-1].rstrip() + " "
            continue
        command = (pending + code.strip()).strip()
        pending = ""
        if command and not command.startswith("#"):
            commands.append((start, re.sub(r"\s+", " ", command)))
    return commands


# ---------------------------------------------------------------------- classification
@dataclass(frozen=True)
class Run:
    """Run the command; ``subs`` (old, new) are applied first, ``{name}`` filled from
    what servers printed; ``after`` are commands that must have run before."""

    code: int = 0
    subs: tuple[tuple[str, str], ...] = ()
    reason: str = ""
    after: tuple[str, ...] = ()
    lane: str | None = None
    slow: bool = False
    timeout: float = 300.0
    expect: str | None = None  # a regex the output must match


@dataclass(frozen=True)
class Serve:
    """A long-running command: started in the background, ready when its output
    matches ``ready`` (named groups become ``{name}`` for later commands); stopped with
    SIGTERM by ``stop_by`` (another command that ends it) or at the end."""

    ready: str
    subs: tuple[tuple[str, str], ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    reason: str = ""
    after: tuple[str, ...] = ()
    lane: str | None = None
    stop_by: str | None = None


@dataclass(frozen=True)
class Doc:
    """Documentation only: not run here, for ``reason``."""

    reason: str


FREE_PORT = "a fixed port could be taken on a shared machine: a free one (0), same command"
SUITE = "the test suite itself: running it from a test would recurse"
PLACEHOLDER = "a placeholder for the reader's own system"
IMAGES = ("needs the pacsim images (minutes to build); tests/docker/test_commands.py runs "
          "up, status, logs and down against them")

SEED = "pacsim legacy seed --studies 5000 --years 8 --dirt typical --seed 7 --out legacy-archive"
RIS = "pacsim serve ris --port 11112 --ae-title RIS_TEST --config examples/ris.yaml"
HL7_SEND = "pacsim hl7 send examples/hl7/*.hl7 --to 127.0.0.1:2575"
CERTS = "pacsim certs --out site-pki --hosts pacs.example.org 10.0.0.5 --days 365"
SANDBOX = "pacsim sandbox up scenarios/sites/training-hospital.yaml --pace 10x"
API = ("API=$(python3 -c 'import json; print(json.load(open(\".pacsim-sandbox.json\"))"
       "[\"api\"])')")
CURLS = (
    "curl -X POST $API/pace -d '{\"pace\": \"60x\"}'",
    "curl -X POST $API/rate -d '{\"factor\": 2}'",
    "curl -X POST $API/pathways -d '{\"pathway\": \"routine\", \"patient\": \"Training Smith\", "
    "\"modality\": \"CT\"}'",
    "curl -X POST $API/faults -d '{\"modality\": \"ct1\", "
    "\"fault\": \"mpps.create-missing-type1\"}'",
    "curl $API/status",
)
PROBE_TRY = "pacsim probe --target builtin --once --store /var/lib/pacsim-probe"
PROBE_STORE = (("/var/lib/pacsim-probe", "probe-store"),)
STORE_REASON = "/var/lib is not writable by every user; the same store, in the scratch folder"
TLS_ARCHIVE = "(archive-tls.yaml) pacsim serve archive --config archive-tls.yaml --port 2762"

CLASSIFIED: dict[str, Run | Serve | Doc] = {
    # top: getting pacsim
    "make demo": Doc("builds .venv; its command, `pacsim run scenarios/golden-path-*.yaml "
                     "--report-dir reports/demo`, is what tests/integration runs per modality"),
    ". .venv/bin/activate": Doc("the venv `make demo` makes; here `pacsim` is this checkout "
                                "on PATH, as activation gives"),
    "pacsim --help": Run(expect=r"usage: pacsim"),
    "make test": Doc(SUITE),
    # integration engineer
    RIS: Serve(ready=r"pacsim serve ris: .*DICOM [\d.]+:(?P<ris_port>\d+), "
                     r"HL7 [\d.]+:(?P<ris_hl7>\d+)",
               subs=(("--port 11112", "--port 0"),), env=(("PACSIM_HL7_PORT", "0"),),
               reason=FREE_PORT + " (PACSIM_HL7_PORT=0 for the file's hl7_port: 2575)"),
    "pacsim serve archive --port 11113 --ae-title OLD_PACS --config examples/legacy.yaml":
        Serve(ready=r"pacsim serve archive: OLD_PACS on [\d.]+:\d+, DICOMweb http",
              subs=(("--port 11113", "--port 0"),), reason=FREE_PORT),
    "pacsim serve modality --config examples/ct-room1.yaml":
        Serve(ready=r"pacsim serve modality: "),
    HL7_SEND: Run(subs=(("127.0.0.1:2575", "127.0.0.1:{ris_hl7}"),), after=(RIS,),
                  reason="the RIS started above, on its free HL7 port",
                  expect=r"adt-a01-admit\.hl7: ADT\^A01 -> AA\n.*orm-o01-ct-chest\.hl7: "
                         r"ORM\^O01 -> AA"),
    ('findscu -W -aec RIS_TEST 127.0.0.1 11112 -k '
     '"ScheduledProcedureStepSequence[0].ScheduledStationAETitle=CT_ROOM1" -k PatientName '
     '-k AccessionNumber'):
        Run(subs=(("127.0.0.1 11112", "127.0.0.1 {ris_port}"),), after=(RIS, HL7_SEND),
            lane="dcmtk", reason="the RIS started above, on its free DICOM port",
            expect=r"AC0420000000"),
    # QA lead
    "pacsim list": Run(expect=r"golden-path-ct\.yaml"),
    "pacsim validate scenarios/*.yaml": Run(expect=r"golden-path-ct\.yaml: valid"),
    "pacsim run scenarios/uat-mammography-technologist.yaml": Run(slow=True,
                                                                  expect=r"PASSED"),
    "pacsim run scenarios/golden-path-*.yaml --target orthanc --report-dir out/":
        Run(lane="orthanc", slow=True, timeout=900),
    "pacsim run scenarios/uat-*.yaml --target NEW_PACS@10.0.0.5:104 --hl7 10.0.0.5:2575":
        Doc(PLACEHOLDER + " (10.0.0.5)"),
    # containers
    "pacsim images build": Doc("builds both images (minutes, network or --local-base); "
                               "tests/docker/test_images.py checks what it builds and the "
                               "--local-base hint of a failed build"),
    "pacsim up compose/mirrored-site.yaml --runtime docker": Doc(IMAGES),
    "pacsim status": Doc(IMAGES),
    "pacsim logs ct1": Doc(IMAGES),
    "pacsim down": Doc(IMAGES + "; and as written it removes every pacsim-labelled "
                       "container on the engine, other tests' included"),
    "pacsim compose render compose/mirrored-site.yaml -o docker-compose.yml":
        Run(expect=r"wrote docker-compose\.yml"),
    # migration
    SEED: Run(subs=(("--studies 5000", "--studies 30"),), slow=True,
              reason="5000 studies take a minute or more on two cores; the count is not "
                     "what is tested"),
    ("pacsim legacy serve legacy-archive --port 11112 --ae-title LEGACY_PACS "
     "--destination NEW_PACS@pacs.test:104"):
        Serve(ready=r"pacsim legacy serve: .*30 studies", subs=(("--port 11112", "--port 0"),),
              after=(SEED,), reason=FREE_PORT),
    ("pacsim migrate --source legacy-archive --target orthanc --strategy staged --since 2y "
     "--sample 200 --rollback-threshold 0.5% --workers 2 --report-dir migration-report"):
        Run(lane="orthanc", slow=True, after=(SEED,), subs=(("--sample 200", "--sample 5"),),
            reason="30 seeded studies (see legacy seed): a sample of 5",
            expect=r"report: migration-report/validation\.html"),
    # trainer
    SANDBOX: Serve(ready=r"state file \.pacsim-sandbox\.json", lane="orthanc",
                   stop_by="pacsim sandbox down"),
    "pacsim sandbox status": Run(lane="orthanc", after=(SANDBOX,), expect=r"sim time"),
    "pacsim sandbox reset": Run(lane="orthanc", after=(SANDBOX,), expect=r"sandbox reset"),
    API: Run(lane="orthanc", after=(SANDBOX,)),
    **{curl: Run(lane="orthanc", after=(SANDBOX, API), expect=r"^\{(?!\"error\")")
       for curl in CURLS},
    "pacsim sandbox down": Run(lane="orthanc", after=(SANDBOX, "pacsim sandbox status",
                                                      "pacsim sandbox reset", *CURLS),
                               expect=r"sandbox down"),
    # go-live
    PROBE_TRY: Run(subs=PROBE_STORE, reason=STORE_REASON, slow=True, expect=r"cycle 1: "),
    ("pacsim probe --target NEW_PACS@pacs.example:104 --worklist RIS@ris.example:104 --hl7 "
     "ris.example:2575 --dicomweb http://pacs.example/dicom-web --every 5m --metrics "
     "127.0.0.1:9464 --store /var/lib/pacsim-probe"): Doc(PLACEHOLDER + " (pacs.example)"),
    "pacsim probe report --since 7d --baseline 7d --store /var/lib/pacsim-probe":
        Run(subs=PROBE_STORE, reason=STORE_REASON, after=(PROBE_TRY,),
            expect=r"system uptime +100\.00% \(1 runs\)"),
    "pacsim probe report --since 30d --store /var/lib/pacsim-probe --report-dir golive":
        Run(subs=PROBE_STORE, reason=STORE_REASON, after=(PROBE_TRY,),
            expect=r"reports written to golive/ \(golive\.json, golive\.html\)"),
    ("pacsim compose render scenarios/sites/general-hospital.yaml -o site/docker-compose.yml "
     "--monitoring"): Run(expect=r"wrote site/monitoring\.yml"),
    # TLS
    CERTS: Run(expect=r"client\.pem"),
    ("echoscu -aec PACSIM_ARC +tls site-pki/client.key site-pki/client.pem +cf site-pki/ca.pem "
     "127.0.0.1 2762"):
        Run(lane="dcmtk", after=(CERTS, TLS_ARCHIVE),
            subs=(("127.0.0.1 2762", "127.0.0.1 {tls_port}"),),
            reason="the README's archive-tls.yaml served on a free port"),
    "pacsim faults run --target builtin --tls-dir site-pki": Run(after=(CERTS,), slow=True,
                                                                 timeout=900),
    "pacsim faults run --target orthanc --tls-dir site-pki --only tls.":
        Run(lane="orthanc", after=(CERTS,), slow=True, code=1,
            reason="exit 1 as documented (Limits): Orthanc 1.10.1 completes a TLS 1.1 "
                   "handshake, so tls.old-version is non-conformant; the rest conform",
            expect=r"tls\.old-version .*non-conformant.*4 conformant, 1 non-conformant"),
    "pacsim faults run --target PACS@pacs.example.org:2762 --tls-dir site-pki --tls-mutual":
        Doc(PLACEHOLDER + " (pacs.example.org)"),
    # load
    "pacsim run scenarios/load/10-vs-200-users.yaml": Run(slow=True, timeout=600),
    ("pacsim run scenarios/load/morning-peak.yaml --var ramp=10s --var hold=20s --var "
     "study_rate=12/h --var images_per_study=2"): Run(slow=True, timeout=600,
                                                      expect=r"modality\.perform errors: "
                                                             r"expected <= 0\.00%, seen 0\.00%"),
    "pacsim run scenarios/load/morning-peak.yaml --target orthanc --var study_rate=12/h":
        Run(lane="orthanc", slow=True, timeout=900),
    # tests
    '.venv/bin/pytest -m "not docker"': Doc(SUITE),
    "make test-fast": Doc(SUITE),
    ".venv/bin/pytest -m dcmtk": Doc(SUITE),
}

#: Commands this module runs that are not README lines: what a README command needs
#: and the README says in prose (here: the archive-tls.yaml block's own comment).
EXTRA: dict[str, Serve] = {
    TLS_ARCHIVE: Serve(ready=r"pacsim serve archive: PACSIM_ARC on [\d.]+:(?P<tls_port>\d+)",
                       after=(CERTS,)),
}


def _entry(command: str) -> Run | Serve | Doc:
    return CLASSIFIED[command] if command in CLASSIFIED else EXTRA[command]


# ---------------------------------------------------------------------- running them
@dataclass
class Workspace:
    """The scratch folder, what has run, what servers printed, what is still running."""

    folder: Path
    env: dict[str, str]
    done: dict[str, str] = field(default_factory=dict)
    values: dict[str, str] = field(default_factory=dict)
    servers: dict[str, subprocess.Popen[str]] = field(default_factory=dict)
    logs: dict[str, Path] = field(default_factory=dict)

    def command_line(self, command: str, subs: tuple[tuple[str, str], ...]) -> str:
        if command == TLS_ARCHIVE:
            command = "pacsim serve archive --config archive-tls.yaml --port 0"
        for old, new in subs:
            assert old in command, (old, command)
            command = command.replace(old, new.format(**self.values))
        return command

    def ensure(self, command: str) -> str:
        """Run ``command`` (and what it needs) unless it already ran; its output."""
        if command in self.done:
            return self.done[command]
        entry = _entry(command)
        assert not isinstance(entry, Doc), f"{command!r} is documentation only"
        for before in entry.after:
            self.ensure(before)
        if command == TLS_ARCHIVE:
            (self.folder / "archive-tls.yaml").write_text(readme_tls_archive(), encoding="utf-8")
        output = (self.serve(command, entry) if isinstance(entry, Serve)
                  else self.run(command, entry))
        self.done[command] = output
        return output

    def run(self, command: str, entry: Run) -> str:
        line = self.command_line(command, entry.subs)
        assignment = re.match(r"^([A-Z_]+)=", line)
        script = f'{line}\nprintf "%s" "${assignment[1]}"' if assignment else line
        done = subprocess.run(["bash", "-c", script], cwd=self.folder, env=self.env, text=True,
                              capture_output=True, timeout=entry.timeout)
        output = done.stdout + done.stderr
        assert done.returncode == entry.code, f"{line}\nexit {done.returncode}\n{output[-3000:]}"
        assert "Traceback" not in output, output[-3000:]
        if assignment:
            self.env[assignment[1]] = done.stdout.strip()
            assert self.env[assignment[1]], f"{line} set nothing"
        if entry.expect:
            assert re.search(entry.expect, output, re.M | re.S), \
                f"{line}: no match for {entry.expect!r} in\n{output[-3000:]}"
        for name, server in list(self.servers.items()):
            if _entry(name).stop_by == command:  # type: ignore[union-attr]
                assert server.wait(timeout=60) == 0, self.logs[name].read_text()[-3000:]
                del self.servers[name]
        return output

    def serve(self, command: str, entry: Serve) -> str:
        line = self.command_line(command, entry.subs)
        log = self.folder / f"server-{len(self.logs)}.log"
        self.logs[command] = log
        env = {**self.env, **dict(entry.env)}
        with log.open("w", encoding="utf-8") as sink:
            process = subprocess.Popen(["bash", "-c", f"exec {line}"], cwd=self.folder, env=env,
                                       text=True, stdout=sink, stderr=subprocess.STDOUT,
                                       start_new_session=True)
        self.servers[command] = process
        deadline = time.monotonic() + 120
        while True:
            text = log.read_text(encoding="utf-8")
            match = re.search(entry.ready, text)
            if match:
                self.values.update(match.groupdict())
                return text
            assert process.poll() is None, f"{line} exited {process.returncode}:\n{text[-3000:]}"
            assert time.monotonic() < deadline, f"{line} not ready in 120s:\n{text[-3000:]}"
            time.sleep(0.2)

    def stop_all(self) -> list[str]:
        """SIGTERM every server still running; the problems (exit code, traceback)."""
        problems = []
        for command, process in self.servers.items():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
            try:
                code = process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                code = process.wait()
            text = self.logs[command].read_text(encoding="utf-8")
            if code != 0 or "Traceback" in text:
                problems.append(f"{command}: exit {code}\n{text[-2000:]}")
        self.servers.clear()
        return problems


def readme_tls_archive() -> str:
    """The README's ``archive-tls.yaml`` block, as the reader would save it."""
    blocks = re.findall(r"```yaml\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)
    found = [b for b in blocks if b.startswith("# archive-tls.yaml")]
    assert len(found) == 1, "the README should hold one archive-tls.yaml example"
    return found[0]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    folder = tmp_path_factory.mktemp("readme")
    for name in LINKED:
        (folder / name).symlink_to(ROOT / name)
    bin_dir = folder / ".bin"
    bin_dir.mkdir()
    shim = bin_dir / "pacsim"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m simulators.cli "$@"\n',
                    encoding="utf-8")
    shim.chmod(0o755)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
           "PYTHONPATH": str(ROOT), "PYTHONUNBUFFERED": "1"}
    space = Workspace(folder, env)
    yield space
    problems = space.stop_all()
    assert not problems, "\n".join(problems)


def _params(lane: str | None) -> list[object]:
    params = []
    for number, command in readme_commands():
        entry = CLASSIFIED.get(command)
        if entry is None or isinstance(entry, Doc) or entry.lane != lane:
            continue
        marks = [pytest.mark.slow] if isinstance(entry, Run) and entry.slow else []
        params.append(pytest.param(command, id=f"L{number}", marks=marks))
    return params


# ---------------------------------------------------------------------- the tests
def test_every_readme_command_is_classified() -> None:
    commands = [command for _, command in readme_commands()]
    unclassified = [c for c in commands if c not in CLASSIFIED]
    assert unclassified == [], "classify these README commands in CLASSIFIED"
    stale = [c for c in CLASSIFIED if c not in commands]
    assert stale == [], "these are no longer in the README"
    assert len(commands) == len(set(commands)), "a command appears twice"
    for command, entry in CLASSIFIED.items():
        assert isinstance(entry, Run | Serve | Doc)
        if isinstance(entry, Doc) or entry.subs or (isinstance(entry, Run) and entry.code):
            assert len(entry.reason) > 10, f"{command}: say why"


def test_the_reader_of_the_readme_sees_what_we_parse() -> None:
    parsed = readme_commands("```sh\npacsim a \\\n    --b c   # note\n# only a comment\n"
                             "\npacsim d\n```\n```yaml\nx: 1\n```\n")
    assert parsed == [(2, "pacsim a --b c"), (6, "pacsim d")]


@pytest.mark.parametrize("command", _params(None))
def test_readme_command_works_as_written(command: str, workspace: Workspace) -> None:
    workspace.ensure(command)


@pytest.mark.dcmtk
@pytest.mark.parametrize("command", _params("dcmtk"))
def test_readme_dcmtk_command_works_as_written(command: str, workspace: Workspace) -> None:
    require_tool("echoscu", "findscu")
    workspace.ensure(command)


@pytest.mark.orthanc
@pytest.mark.slow
@pytest.mark.parametrize("command", _params("orthanc"))
def test_readme_orthanc_command_works_as_written(command: str, workspace: Workspace) -> None:
    require_tool("Orthanc")
    workspace.ensure(command)


@pytest.mark.orthanc
@pytest.mark.slow
def test_hospital_ci_example_runs_locally_as_its_readme_says(tmp_path: Path) -> None:
    """examples/hospital-ci/README.md: `pytest --pacsim-runtime local` runs its site.yaml
    in the test process (its Orthanc as a local process). The text used to say
    `--pacsim-scenario ''`, whose default department has no `mr1` for these tests."""
    require_tool("Orthanc")
    folder = ROOT / "examples" / "hospital-ci"
    assert "`pytest --pacsim-runtime local`" in (folder / "README.md").read_text("utf-8")
    done = subprocess.run([sys.executable, "-m", "pytest", "--pacsim-runtime", "local", "-q",
                           "-p", "no:cacheprovider", f"--junitxml={tmp_path / 'junit.xml'}"],
                          cwd=folder, env={**os.environ, "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    assert "4 passed" in done.stdout
