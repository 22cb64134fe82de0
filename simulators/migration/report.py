"""The validation report: ``validation.json``, ``validation.csv`` and ``validation.html``.

JSON keys are a contract (CI, scenario steps and the lead's tooling read them):
``mismatches`` is a list of ``{"study_uid", "class", "detail"}`` (data-quality
classes as in the seeder's manifest, transfer classes as in validation.py), with
``counts`` per class, ``totals``, ``rates``, ``timings``, ``strategy``, ``stages``,
``signed_off`` (true only when no transfer mismatch and no failed study remains
and the run was not stopped), ``stopped``/``stop_reason``/``tripped`` for the sample
pass and the rollback trigger, ``explained`` (transfer differences proven to be what
a source defect predicts; each names that class), ``conflicts`` (each cross-study
defect once, with every study it involves) and, for a seeded directory source,
``manifest``: the self-check against the seeder's ground truth, counted in
(study, class) pairs: detected and missed per injected class, and every pair found
that the manifest does not list (``false_mismatches``). HTML in the house
style of the load report: inline CSS, no scripts, every peer value escaped.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import re
from html import escape
from pathlib import Path
from typing import Any, Sequence

from simulators.migration.checkpoint import Checkpoint, FindingRow
from simulators.common.formatting import jsonable, show
from simulators.common.header import HEADER_CSS, RunHeader, banner_html, failures_index_html, \
    header_html, iso_time
from simulators.migration.judge import TRANSFER_CLASSES
from simulators.quality.checks import Conflict

FORMAT = "pacsim-migration-validation"
VERSION = 2
#: How the checkpoint stores an excused difference: ``[by <class>] detail``.
_BY = re.compile(r"^\[by ([^\]]+)\] ")


def _entry(row: FindingRow) -> dict[str, str]:
    return {"study_uid": row.study_uid, "class": row.cls, "detail": row.detail}


def build_report(checkpoint: Checkpoint, *, options: Any, endpoints: Any, stages: Sequence[Any],
                 timings: dict[str, float], stopped: str | None, stop_reason: str,
                 tripped: list[dict[str, str]],
                 conflicts: Sequence[Conflict] = ()) -> dict[str, Any]:
    """The report dict of the run so far (a resumed run reports every study it knows)."""
    quality = checkpoint.findings("quality")
    transfer = checkpoint.findings("transfer")
    explained = checkpoint.findings("explained")
    mismatches = _merge(quality, explained) + [_entry(r) for r in transfer]
    merged_into = {(r.study_uid, r.cls) for r in explained
                   if _explaining(r, quality) is not None}
    counts: dict[str, int] = {}
    for item in mismatches:
        counts[item["class"]] = counts.get(item["class"], 0) + 1
    states = checkpoint.counts()
    done = states["validated"] + states["mismatch"]
    failed_or_bad = states["mismatch"] + states["failed"]
    active = states["pending"] + states["moving"] + states["moved"]
    planned_stages = [{"name": s.name, "since": s.since, "before": s.before,
                       "studies": checkpoint.studies_of_stage().get(s.name, {})} for s in stages]
    moving_seconds = max(timings.get("sample_s", 0) + timings.get("bulk_s", 0), 1e-9)
    report: dict[str, Any] = {
        "format": FORMAT, "version": VERSION,
        "generated": dt.datetime.now().isoformat(timespec="seconds"),
        "source": str(endpoints.source), "target": str(endpoints.target),
        "target_kind": endpoints.target_kind,
        "strategy": options.strategy, "since": options.since, "via": options.via,
        "batch": options.batch, "workers": options.workers,
        "rules": str(options.rules) if options.rules else "default",
        "rollback_threshold": options.rollback_threshold,
        "pixel_check": str(getattr(options, "pixel_check", "sample 1")),
        "sample": checkpoint.recall("sample"),
        "stages": planned_stages,
        "totals": {"studies": sum(states.values()), **states, "validated_or_mismatch": done,
                   "move_requests": checkpoint.total_moves(),
                   "transfer_mismatches": len(transfer), "quality_findings": len(quality),
                   "explained": len(explained)},
        "rates": {"transfer_mismatch_rate": round(failed_or_bad / max(done + states["failed"], 1), 5),
                  "studies_per_s": round(done / moving_seconds, 3)},
        "timings": {k: round(v, 3) for k, v in timings.items()},
        "counts": dict(sorted(counts.items())),
        "signed_off": not transfer and not states["failed"] and stopped is None and not active,
        "stopped": stopped, "stop_reason": stop_reason, "tripped": tripped,
        "mismatches": mismatches,
        "explained": [_entry(r) for r in explained if (r.study_uid, r.cls) not in merged_into],
        "conflicts": [{"class": c.cls, "key": c.key, "values": c.values,
                       "studies": list(c.studies)} for c in list(conflicts)[:1000]],
        "conflict_count": len(conflicts),
    }
    report["header"] = _header(options, endpoints, timings).as_dict()
    named = [m["study_uid"] for m in mismatches] + [t["study_uid"] for t in tripped]
    named += [e["study_uid"] for e in report["explained"]]
    report["studies"] = checkpoint.study_facts(named[:5000])
    if endpoints.source_dir is not None:
        report["manifest"] = compare_manifest(Path(endpoints.source_dir) / "manifest.json",
                                              mismatches, checkpoint)
    return report


def _header(options: Any, endpoints: Any, timings: dict[str, float]) -> RunHeader:
    """The sign-off header: target, capabilities when the caller knew them, the seed of
    the pixel sample, and the run's start (its end minus the total time)."""
    ended = dt.datetime.now(dt.timezone.utc).timestamp()
    return RunHeader(target_kind=str(endpoints.target_kind), target_address=str(endpoints.target),
                     capabilities=getattr(options, "capabilities", None),
                     seed=getattr(options, "seed", None),
                     started=iso_time(ended - timings.get("total_s", 0.0)), ended=iso_time(ended))


def explained_by(row: FindingRow) -> str:
    """The data-quality class an excused difference names (``a+b`` when two did)."""
    match = _BY.match(row.detail)
    return match.group(1) if match else ""


def _explaining(row: FindingRow, quality: list[FindingRow]) -> FindingRow | None:
    classes = explained_by(row).split("+")
    return next((q for q in quality if q.study_uid == row.study_uid and q.cls in classes), None)


def _merge(quality: list[FindingRow], explained: list[FindingRow]) -> list[dict[str, str]]:
    """Quality findings, each with the transfer differences it explains in its detail."""
    entries = {(q.study_uid, q.cls): _entry(q) for q in quality}
    for row in explained:
        owner = _explaining(row, quality)
        if owner is not None:
            entries[(owner.study_uid, owner.cls)]["detail"] += (
                f" (explains {row.cls}: {_BY.sub('', row.detail)})")
    return list(entries.values())


def compare_manifest(path: Path, mismatches: list[dict[str, str]],
                     checkpoint: Checkpoint) -> dict[str, Any] | None:
    """Detected/missed per injected class, and mismatches on studies the seeder left clean.

    Only studies this run validated count (a parallel-archive run never looks at the
    older studies, so their defects are ``not_validated``, not missed).
    """
    if not path.exists():
        return None
    manifest = json.loads(path.read_text("utf-8"))
    defects = manifest.get("defects", [])
    injected = {(d["study_uid"], d["class"]) for d in defects}
    found = {(m["study_uid"], m["class"]) for m in mismatches if m["class"] not in TRANSFER_CLASSES}
    per_class: dict[str, dict[str, int]] = {}
    missed: list[dict[str, str]] = []
    for study_uid, cls in sorted(injected):
        figures = per_class.setdefault(cls, {"injected": 0, "detected": 0, "missed": 0,
                                             "not_validated": 0, "unlisted": 0})
        figures["injected"] += 1
        if checkpoint.state(study_uid) not in ("validated", "mismatch"):
            figures["not_validated"] += 1
        elif (study_uid, cls) in found:
            figures["detected"] += 1
        else:
            figures["missed"] += 1
            missed.append({"study_uid": study_uid, "class": cls})
    # every (study, class) pair found that the manifest does not list: a false alarm,
    # whether or not the study carries some other injected defect
    false = [m for m in mismatches if m["class"] not in TRANSFER_CLASSES
             and (m["study_uid"], m["class"]) not in injected]
    for item in false:
        per_class.setdefault(item["class"], {"injected": 0, "detected": 0, "missed": 0,
                                             "not_validated": 0, "unlisted": 0})["unlisted"] += 1
    return {"path": str(path), "seed": manifest.get("seed"), "dirt": manifest.get("dirt"),
            "counted_in": "(study, class) pairs",
            "classes": dict(sorted(per_class.items())), "missed": missed[:200],
            "missed_count": len(missed),
            "false_mismatches": false[:200], "false_mismatch_count": len(false),
            "all_detected": not missed, "no_false_mismatches": not false}


def write_reports(report: dict[str, Any], directory: Path) -> dict[str, Path]:
    """Write the three files; returns their paths by format."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = {"json": directory / "validation.json", "csv": directory / "validation.csv",
             "html": directory / "validation.html"}
    paths["json"].write_text(json.dumps(report, indent=2, default=jsonable) + "\n", "utf-8")
    with paths["csv"].open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["study_uid", "class", "kind", "detail"])
        for item in report["mismatches"]:
            kind = "transfer" if item["class"] in TRANSFER_CLASSES else "quality"
            writer.writerow([item["study_uid"], item["class"], kind, item["detail"]])
        for item in report["explained"]:
            writer.writerow([item["study_uid"], item["class"], "explained", item["detail"]])
    paths["html"].write_text(render_html(report), "utf-8")
    return paths


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2em;color:#222;max-width:1300px}
h1{font-size:1.4em} h2{font-size:1.15em;margin-top:1.8em}
table{border-collapse:collapse;margin:.5em 0 1em 0}
th,td{border:1px solid #ddd;padding:.25em .5em;text-align:left;font-size:.85em;vertical-align:top}
th{background:#f4f4f4} td.n{text-align:right} .ok{color:#2e7d32} .bad{color:#c62828;font-weight:600}
.badge{display:inline-block;padding:.1em .5em;border-radius:.3em;color:#fff;font-weight:600}
.muted{color:#666;font-size:.85em}
td.uid{min-width:20em;max-width:24em;word-break:break-all;font-size:.75em}
td.detail{min-width:18em;overflow-wrap:anywhere} td.date{white-space:nowrap}
"""


def _table(head: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    header = "".join(f"<th>{escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{escape(show(c, 300))}</td>" for c in row) + "</tr>"
                   for row in rows)
    return f"<table><tr>{header}</tr>{body}</table>"


_FACT_COLUMNS = ("patient", "accession", "date", "modality")
_NOT_RECORDED = "-"


def _facts(report: dict[str, Any], study_uid: str) -> tuple[str, str, str, str]:
    """Patient, accession, date and modality of a study as the tables show them."""
    found = (report.get("studies") or {}).get(study_uid) or {}
    patient = " ".join(x for x in (found.get("patient_id", ""),
                                   f"({found['patient_name']})" if found.get("patient_name")
                                   else "") if x)
    return (patient or _NOT_RECORDED, found.get("accession") or _NOT_RECORDED,
            _date(found.get("study_date", "")), found.get("modality") or _NOT_RECORDED)


def _date(value: str) -> str:
    """``20240131`` -> ``2024-01-31`` (a person reads dates, not DA values)."""
    if len(value) == 8 and value.isdigit():
        return f"{value[:4]}-{value[4:6]}-{value[6:]}"
    return value or _NOT_RECORDED


def _study_rows(report: dict[str, Any], items: Sequence[dict[str, str]], *,
                anchors: bool = False) -> str:
    """Study tables: transfer mismatches first (they block sign-off), then data quality."""
    ordered = sorted(items, key=lambda m: (m["class"] not in TRANSFER_CLASSES, m["study_uid"]))
    head = "".join(f"<th>{h}</th>" for h in ("verdict", *_FACT_COLUMNS, "study UID", "class",
                                              "detail"))
    rows = []
    for index, item in enumerate(ordered):
        transfer = item["class"] in TRANSFER_CLASSES
        anchor = f' id="m{index}"' if anchors and transfer else ""
        cells = [f"<td class={'bad' if transfer else 'muted'}>"
                 f"{'transfer mismatch' if transfer else 'data quality'}</td>"]
        cells += [f"<td{' class=date' if n == 2 else ''}>{escape(show(c, 120))}</td>"
                  for n, c in enumerate(_facts(report, item["study_uid"]))]
        cells += [f"<td class=uid><code>{escape(item['study_uid'])}</code></td>",
                  f"<td>{escape(item['class'])}</td>",
                  f"<td class=detail>{escape(show(item['detail'], 300))}</td>"]
        rows.append(f"<tr{anchor}>{''.join(cells)}</tr>")
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>"


def _index(report: dict[str, Any]) -> str:
    """Failures first: each transfer mismatch (what blocks sign-off), linked to its row."""
    ordered = sorted(report["mismatches"][:2000],
                     key=lambda m: (m["class"] not in TRANSFER_CLASSES, m["study_uid"]))
    items = []
    for index, item in enumerate(ordered):
        if item["class"] not in TRANSFER_CLASSES or len(items) >= 50:
            continue
        patient, accession, date, modality = _facts(report, item["study_uid"])
        items.append((f"m{index}", f"{patient}, accession {accession}, {date} {modality}",
                      f"{item['class']}: {show(item['detail'], 160)}"))
    return failures_index_html(items, title="Transfer mismatches (block sign-off)")


def _verdict(report: dict[str, Any]) -> tuple[str, str]:
    totals = report["totals"]
    if report["signed_off"]:
        return "SIGNED OFF", (f"{totals['validated']} of {totals['studies']} studies validated; "
                              f"no transfer mismatch, nothing failed")
    if report.get("stopped"):
        return "NOT SIGNED OFF", f"stopped ({report['stopped']}): {report['stop_reason']}"
    return "NOT SIGNED OFF", (f"{totals['mismatch']} studies with transfer mismatches, "
                              f"{totals['failed']} failed, {totals['pending']} pending")


def render_html(report: dict[str, Any]) -> str:
    header = RunHeader.from_dict(report.get("header") or {
        "target_kind": report.get("target_kind", ""), "target_address": report.get("target", ""),
        "started": report.get("generated", "")})
    totals = report["totals"]
    stopped = (f"<p class=bad>Stopped: {escape(report['stop_reason'])}</p>"
               if report.get("stopped") else "")
    stages = _table(("stage", "since", "before", "studies by state"),
                    [(s["name"], s["since"] or "-", s["before"] or "-",
                      ", ".join(f"{k}: {v}" for k, v in sorted(s["studies"].items())))
                     for s in report["stages"]])
    counts = _table(("class", "kind", "studies"),
                    [(c, "transfer" if c in TRANSFER_CLASSES else "data quality", n)
                     for c, n in report["counts"].items()])
    mismatches = (_study_rows(report, report["mismatches"][:2000], anchors=True)
                  if report["mismatches"] else "<p>No mismatch and no data-quality finding.</p>")
    if not report["counts"]:
        counts = "<p>No finding in any class.</p>"
    manifest = ""
    if report.get("manifest") and report["manifest"].get("classes"):
        m = report["manifest"]
        manifest = ("<h2>Against the seeder's manifest</h2>" + _table(
            ("class", "injected", "detected", "missed", "not validated", "found, not listed"),
            [(c, f["injected"], f["detected"], f["missed"], f["not_validated"],
              f.get("unlisted", 0)) for c, f in m["classes"].items()]) +
            f"<p>Counted in (study, class) pairs. Found but not in the manifest: "
            f"{m['false_mismatch_count']}.</p>")
    conflicts = ""
    if report.get("conflicts"):
        conflicts = (f"<h2>Cross-study conflicts ({report['conflict_count']})</h2>"
                     "<p class=muted>Each once, with every study it involves.</p>" + _table(
                         ("class", "shared", "values (studies)", "studies"),
                         [(c["class"], c["key"],
                           ", ".join(f"{v} ({n})" for v, n in c["values"].items()),
                           ", ".join(c["studies"])) for c in report["conflicts"][:500]]))
    tripped = ("<h2>Mismatches that tripped the stop</h2>" + _study_rows(report, report["tripped"])
               if report["tripped"] else "")
    limits = ("<p class=muted>Patient, accession, date and modality come from the migration "
              "checkpoint (the studies table and the validator's evidence of the source files); "
              "'-' means the checkpoint holds no value for that study (e.g. a study that "
              "failed before its files were read, or a report written by an older pacsim).</p>")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>pacsim migration validation</title>
<style>{_CSS}{HEADER_CSS}</style></head><body>
{banner_html(*_verdict(report))}
<h1>Migration validation</h1>
{header_html(header)}
{_index(report)}
<p>{escape(report['source'])} &rarr; {escape(report['target'])} ({escape(report['target_kind'])});
strategy {escape(report['strategy'])}, via {escape(report['via'])}, {report['workers']} worker(s);
generated {escape(report['generated'])}.</p>
<p>{totals['studies']} studies: {totals['validated']} validated, {totals['mismatch']} with transfer
mismatches, {totals['failed']} failed, {totals['pending']} pending; {totals['quality_findings']}
data-quality findings; {totals['move_requests']} transfers.
Rollback threshold {report['rollback_threshold']:.2%}; pixel check:
{escape(str(report.get('pixel_check', '')))}.</p>{stopped}
<p class=muted>Data-quality findings are defects of the legacy archive; they never trip the
rollback. Only transfer mismatches (data lost or changed by the migration) do.</p>
{tripped}
<h2>Findings per class</h2>{counts}
<h2>Mismatches (transfer first)</h2>{limits if report["mismatches"] else ""}{mismatches}
<h2>Stages</h2>{stages}
{manifest}{conflicts}
</body></html>
"""


__all__ = ["build_report", "write_reports", "render_html", "compare_manifest", "FORMAT"]
