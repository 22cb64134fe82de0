"""Every report type, from a real small run, opened in headless Chromium (issue 18).

Why a browser: a report is signed by a person looking at it, and markup that parses can
still render as an empty page or bury the verdict. Each report here is made by a real
``pacsim`` command on loopback (a scenario with a migration and a load phase and one
failing expectation, ``faults run``, ``probe`` + ``probe report``), screenshotted by
Chromium, and the PNG must show the banner's colour at the top and more than a blank
page; the HTML must open with exactly one verdict banner and carry every header field
(target kind and address, supports, pacsim version, seed, start, end, host, command
line) with a value, and the JSON beside it the same header.
"""

from __future__ import annotations

import json
import re
import socket
import struct
import subprocess
import sys
import zlib
from html.parser import HTMLParser
from pathlib import Path

import pytest

from simulators.common.header import HEADER_FIELDS, VERDICT_COLOURS, pacsim_version
from tests.helpers import needs, require_tool

ROOT = Path(__file__).resolve().parents[2]
PACSIM = [sys.executable, str(ROOT / "cli.py")]
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
SCENARIO = """\
pacsim: 1
name: Sign-off report sample
description: A small run with a migration, a load phase and one failing expectation.
environment:
  seed: 11
  target: builtin
  patients: {jane: 0}
  actors:
    ehr: {kind: ehr}
    ris: {kind: ris, ae_title: GH_RIS}
    ct1: {kind: modality, modality: CT, ae_title: CT_ROOM1, station: CT1}
    legacy: {kind: archive, ae_title: LEGACY_PACS}
defaults:
  step: {timeout: 120s}
steps:
  - name: Patient is admitted
    do: hl7.admit
    patient: $jane
    expect: {ack: AA}
  - name: The legacy PACS holds a little dirty history
    do: legacy.seed
    actor: legacy
    studies: 8
    years: 2
    dirt: heavy
    seed: 5
    expect: {studies: 8}
  - name: The legacy archive is migrated and validated
    do: migrate.run
    source: legacy
    expect: {signed_off: true}
load:
  name: tiny peak
  modalities: {count: 3, mix: {CT: 100%}}
  stages:
    - {name: peak, duration: 3s, target: 3}
  every_modality:
    - {do: mwl.query, every: 1s}
  thresholds:
    mwl.query: {errors: 0%}
finally:
  - name: "The RIS refuses a second admission (it does not: this expectation fails)"
    do: hl7.admit
    patient: $jane
    expect: {ack: AR}
"""


def pacsim(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*PACSIM, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=600)


@pytest.fixture(scope="module")
@needs("chromium")
def chromium() -> str:
    return require_tool("chromium")["chromium"]


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Run each command once; the HTML report of each type by name."""
    work = tmp_path_factory.mktemp("reports")
    (work / "signoff.yaml").write_text(SCENARIO)
    run = pacsim("run", "signoff.yaml", "--report-dir", "out", cwd=work)
    assert run.returncode == 1, run.stdout + run.stderr  # the finally step fails on purpose
    # the console ends with the one summary line
    assert re.search(r"^1 scenario: 0 passed, 1 failed, 0 errors in \S+$",
                     run.stdout.strip().splitlines()[-2], re.M), run.stdout[-600:]
    faults = pacsim("faults", "run", "--target", "builtin", "--only", "assoc.*",
                    "--html", "faults.html", "--json", "faults.json", cwd=work)
    assert faults.returncode in (0, 1), faults.stderr
    probe = pacsim("probe", "--target", "builtin", "--once", "--store", "store", cwd=work)
    assert probe.returncode == 0, probe.stdout + probe.stderr
    report = pacsim("probe", "report", "--store", "store", "--html", "golive.html", cwd=work)
    assert report.returncode == 0, report.stdout + report.stderr
    out = work / "out"
    return {"scenario": out / "report.html",
            "load": next(out.glob("load/*/load.html")),
            "validation": next(out.glob("migration/*/validation.html")),
            "faults": work / "faults.html", "golive": work / "golive.html"}


class Page(HTMLParser):
    """What the tests read of a report: banners, header rows, links, ids, first tag."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.first_in_body: str | None = None
        self.in_body = False
        self.banners: list[str] = []
        self.fields: dict[str, str] = {}
        self.ids: set[str] = set()
        self.hrefs: list[str] = []
        self.index_hrefs: list[str] = []
        self.details = 0
        self._field: str | None = None
        self._in_td = False
        self._in_index = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "body":
            self.in_body = True
        elif self.in_body and self.first_in_body is None:
            self.first_in_body = values.get("class", tag)
        if "banner" in values.get("class", "").split():
            self.banners.append(values.get("data-verdict", ""))
        if "id" in values:
            self.ids.add(values["id"])
        if tag == "a" and "href" in values:
            self.hrefs.append(values["href"])
            if self._in_index:
                self.index_hrefs.append(values["href"])
        if tag == "nav" and "failures" in values.get("class", ""):
            self._in_index = True
        if tag == "tr" and "data-field" in values:
            self._field = values["data-field"]
            self.fields[self._field] = ""
        if tag == "td" and self._field:
            self._in_td = True
        if tag == "details":
            self.details += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "tr":
            self._field, self._in_td = None, False
        if tag == "nav":
            self._in_index = False

    def handle_data(self, data: str) -> None:
        if self._in_td and self._field:
            self.fields[self._field] += data


def parse(path: Path) -> Page:
    page = Page()
    page.feed(path.read_text("utf-8"))
    page.close()
    return page


def png_pixels(path: Path) -> tuple[int, int, list[bytes]]:
    """Decode an 8-bit RGB/RGBA PNG (what Chromium writes) to rows of pixel bytes."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, width, height, bpp = 8, b"", 0, 0, 0
    while pos < len(data):
        (length,), kind = struct.unpack(">I", data[pos:pos + 4]), data[pos + 4:pos + 8]
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and colour in (2, 6), (depth, colour)
            bpp = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw, stride, rows = zlib.decompress(idat), width * bpp, []
    previous = bytearray(stride)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            left = line[i - bpp] if i >= bpp else 0
            up, corner = previous[i], previous[i - bpp] if i >= bpp else 0
            if kind == 1:
                line[i] = (line[i] + left) & 255
            elif kind == 2:
                line[i] = (line[i] + up) & 255
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 255
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                pred = left if pa <= pb and pa <= pc else (up if pb <= pc else corner)
                line[i] = (line[i] + pred) & 255
        rows.append(bytes(line) if bpp == 3 else bytes(b for j, b in enumerate(line) if j % 4 != 3))
        previous = line
    return width, height, rows


def screenshot(chromium: str, html: Path, png: Path) -> None:
    subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu",
                    "--hide-scrollbars", f"--screenshot={png}", "--window-size=1400,900",
                    html.resolve().as_uri()], capture_output=True, timeout=120, check=True)
    assert png.exists() and png.stat().st_size > 0, f"no screenshot of {html}"


#: The banner each run must show, from what the run's own JSON says.
def expected_verdict(name: str, html: Path) -> str:
    if name == "scenario":
        return json.loads((html.parent / "report.json").read_text())["verdict"]
    if name == "load":
        return "PASS" if json.loads((html.parent / "load.json").read_text())["passed"] else "FAIL"
    if name == "validation":
        signed = json.loads((html.parent / "validation.json").read_text())["signed_off"]
        return "SIGNED OFF" if signed else "NOT SIGNED OFF"
    if name == "faults":
        return json.loads((html.parent / "faults.json").read_text())["verdict"]
    return "PASS"  # golive: one probe cycle on a healthy built-in target


@pytest.mark.slow
@pytest.mark.parametrize("name", ["scenario", "load", "validation", "faults", "golive"])
def test_report_opens_with_banner_and_header_in_a_real_browser(
        name: str, made: dict[str, Path], chromium: str, tmp_path: Path) -> None:
    html = made[name]
    page = parse(html)
    verdict = expected_verdict(name, html)
    assert page.banners == [verdict], page.banners           # exactly one banner
    assert page.first_in_body == "banner", page.first_in_body  # and it opens the page
    for key, label in HEADER_FIELDS:
        assert page.fields.get(key, "").strip(), f"{name}: header field {label} missing/empty"
    assert page.fields["pacsim_version"] == pacsim_version()
    assert page.fields["host"] == socket.gethostname()
    assert page.fields["command_line"].startswith("pacsim ")
    assert ISO.match(page.fields["ended"]), page.fields["ended"]

    png = tmp_path / f"{name}.png"
    screenshot(chromium, html, png)
    width, height, rows = png_pixels(png)
    colours = {row[i:i + 3] for row in rows[::7] for i in range(0, len(row), 21)}
    assert len(colours) > 20, f"{name}: the screenshot is (nearly) blank: {len(colours)} colours"
    banner = bytes.fromhex(VERDICT_COLOURS[verdict].lstrip("#"))
    hits = sum(1 for row in rows[:160] for i in range(0, len(row), 3) if row[i:i + 3] == banner)
    assert hits > 5000, f"{name}: no {verdict} banner colour at the top ({hits} pixels)"


@pytest.mark.slow
def test_scenario_report_indexes_failures_collapses_exchanges_and_links_artefacts(
        made: dict[str, Path]) -> None:
    html = made["scenario"]
    page = parse(html)
    text = html.read_text("utf-8")
    assert page.fields["target_kind"] == "builtin"
    assert re.fullmatch(r"PACSIM_ARC@127\.0\.0\.1:\d+", page.fields["target_address"])
    assert page.fields["seed"] == "11" and "target:" in page.fields["supports"]
    assert page.fields["command_line"] == "pacsim run signoff.yaml --report-dir out"
    # failures first: one entry, above every step, pointing at the failing finally step
    assert len(page.index_hrefs) == 1 and text.index('class="failures"') < text.index('class="step"')
    anchor = page.index_hrefs[0].lstrip("#")
    assert anchor in page.ids
    section = text[text.index(f'id="{anchor}"'):]
    assert "NOT met" in section[:3000] and "ack: expected AR, seen AA" in text
    assert "expected 'AR'" not in text.split("<h2", 1)[0]  # plain words, not reprs, on top
    assert page.details >= 3                                 # exchange tables collapse
    # one folder per run: every artefact lies under it and is linked, relative
    out = html.parent
    linked = {h for h in page.hrefs if not h.startswith("#")}
    assert {p.relative_to(out).as_posix() for p in out.glob("*/*/*.html")} <= linked
    for href in linked:
        assert (out / href).is_file(), href
    document = json.loads((out / "report.json").read_text())
    assert document["header"]["target_kind"] == "builtin" and document["header"]["seed"] == 11
    assert {k for k, _ in HEADER_FIELDS} <= set(document["header"])
    assert ISO.match(document["header"]["started"])
    assert document["runs"][0]["capabilities"]["query"]["supported"] is True


@pytest.mark.slow
def test_validation_table_names_patient_accession_date_and_modality(
        made: dict[str, Path]) -> None:
    html = made["validation"]
    text = html.read_text("utf-8")
    report = json.loads((html.parent / "validation.json").read_text())
    assert report["mismatches"], "heavy dirt must leave data-quality findings to show"
    assert {k for k, _ in HEADER_FIELDS} <= set(report["header"])
    rows = re.findall(r"<tr>(<td class=(?:bad|muted)>.*?)</tr>", text)
    assert len(rows) == len(report["mismatches"])
    accessions = []
    for row in rows:
        cells = re.findall(r"<td[^>]*>(.*?)</td>", row)
        patient, accession, date, _modality = cells[1:5]
        assert patient != "-" and re.fullmatch(r"\d{4}-\d\d-\d\d", date), cells
        accessions.append(accession)
    assert any(a.startswith("AC") for a in accessions), accessions
    for uid, facts in report["studies"].items():
        assert facts["patient_id"] and facts["study_date"], (uid, facts)
