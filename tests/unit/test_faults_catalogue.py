"""The fault catalogue is complete, consistent and probe-backed; profiles are deterministic;
the CLI lists it. No sockets here: the wire tests are tests/integration/test_faults_*.py."""

from __future__ import annotations

import argparse
import json

import pytest

from simulators.errors import ConfigError
from simulators.injection import mutations
from simulators.injection.catalogue import BY_ID, CATALOGUE, fault, select
from simulators.cli.faults import register
from simulators.injection.model import ACK, DIMSE, HOOKS, REJECT, Observation
from simulators.faults.probing import PROBES, judge
from simulators.injection.profile import PROFILES, FaultInjector, parse_faults
from simulators.faults import runner  # noqa: F401 - registers every probe

#: Every id FAULTS.md names (its tables), so dropping one from the catalogue fails here.
FAULTS_MD_IDS = {
    "mpps.create-not-in-progress", "mpps.create-missing-type1", "mpps.create-duplicate",
    "mpps.set-unknown", "mpps.set-after-final", "mpps.set-create-only-attr",
    "mpps.complete-without-series", "mpps.wrong-study-uid", "mpps.wrong-patient",
    "mpps.unscheduled", "mpps.orphan", "mpps.bad-vr", "mpps.charset", "mpps.double-claim",
    "mpps.discontinued", "assoc.over-limit", "assoc.unknown-calling-ae",
    "assoc.unknown-called-ae", "assoc.abort-mid-transfer", "assoc.pdu-too-large", "assoc.idle",
    "mwl.cancel", "mwl.wrong-identifier", "mwl.broad-query", "mwl.matching",
    "store.duplicate-uid-different-content", "store.sop-mismatch", "store.missing-type1",
    "store.unsupported-ts", "stgcmt.same-vs-new-assoc", "stgcmt.partial",
    "mllp.no-start-block", "mllp.no-end-block", "mllp.lf-separators", "mllp.oversize",
    "mllp.stall", "mllp.split", "hl7.required-missing", "hl7.unsupported-event",
    "hl7.bad-table-value", "hl7.duplicate-control-id", "hl7.out-of-order", "hl7.merge",
}


def test_every_faults_md_entry_is_catalogued_and_more() -> None:
    assert FAULTS_MD_IDS <= set(BY_ID)
    assert len(CATALOGUE) > len(FAULTS_MD_IDS)  # "and more you find"
    assert len(BY_ID) == len(CATALOGUE)  # ids are unique


@pytest.mark.parametrize("entry", CATALOGUE, ids=lambda f: f.id)
def test_entry_is_complete_and_has_a_probe(entry) -> None:  # type: ignore[no-untyped-def]
    assert entry.hook in HOOKS and entry.section and entry.description
    assert any(word in entry.section for word in ("PS3.", "HL7", "IHE"))
    assert entry.id in PROBES
    exp = entry.expected
    if exp.kind == DIMSE:
        assert exp.statuses or exp.any_failure
    if exp.kind == REJECT:
        assert exp.reject is not None and exp.reject[0] in (1, 2)
    if exp.kind == ACK:
        assert set(exp.ack_codes) <= {"AE", "AR"} and exp.err_codes
    assert exp.describe()
    assert json.loads(json.dumps(entry.as_dict()))["id"] == entry.id


def test_select_and_lookup() -> None:
    assert {f.id for f in select("mpps.set-*")} == {
        "mpps.set-unknown", "mpps.set-after-final", "mpps.set-create-only-attr",
        "mpps.set-unknown-status"}
    assert all(f.id.startswith(("hl7.", "mllp.")) for f in select("hl7.,mllp."))
    with pytest.raises(ConfigError):
        select("nothing.*")
    with pytest.raises(ConfigError, match="unknown fault"):
        fault("mpps.nope")


def test_judge_compares_with_the_catalogue() -> None:
    ncreate = BY_ID["mpps.create-not-in-progress"]
    assert judge(ncreate, Observation("x", status=0x0106))[0] == "conformant"
    assert judge(ncreate, Observation("x", status=0x0000))[0] == "non-conformant"
    assert judge(ncreate, Observation("x", unsupported="no MPPS"))[0] == "not supported by target"
    changed = Observation("x", status=0x0106, changed=["worklist item A changed"])
    assert judge(ncreate, changed) == ("non-conformant", "worklist item A changed")
    reject = BY_ID["assoc.over-limit"]
    assert judge(reject, Observation("x", reject=(2, 3, 2)))[0] == "conformant"
    assert judge(reject, Observation("x", reject=(1, 1, 1)))[0] == "non-conformant"
    hl7 = BY_ID["hl7.bad-table-value"]
    assert judge(hl7, Observation("x", ack_code="AE", err_code=103))[0] == "conformant"
    assert judge(hl7, Observation("x", ack_code="AE", err_code=207))[0] == "non-conformant"
    assert judge(BY_ID["mpps.double-claim"], Observation("x"))[0] == "implementation-defined"


def test_profiles_target_deterministically() -> None:
    rules = parse_faults(["malformed-mpps-scanner"])
    assert {r.id for r in rules} == {dict(r)["id"] for r in PROFILES["malformed-mpps-scanner"]}
    injector = FaultInjector(parse_faults([{"id": "mpps.bad-vr", "nth": 3},
                                           {"id": "mpps.wrong-patient", "every": 2}]))
    fired = [injector.pick("modality.mpps.n-create") for _ in range(6)]
    assert fired == [[], ["mpps.wrong-patient"], ["mpps.bad-vr"], ["mpps.wrong-patient"], [],
                     ["mpps.wrong-patient"]]
    draws = [FaultInjector(parse_faults([{"id": "mpps.bad-vr", "rate": 0.3, "seed": 4}]))
             for _ in range(2)]
    runs = [[bool(d.pick("modality.mpps.n-create")) for _ in range(200)] for d in draws]
    assert runs[0] == runs[1] and 30 < sum(runs[0]) < 90  # same seed, same hits, ~30 %


@pytest.mark.parametrize("bad", [{"id": "mpps.bad-vr", "rate": 2}, {"id": "x.y"},
                                 {"id": "mpps.bad-vr", "nth": 1, "every": 2}, {"rate": 1},
                                 "hl7.required-missing"])
def test_bad_profiles_are_config_errors(bad) -> None:  # type: ignore[no-untyped-def]
    from simulators.injection.profile import MODALITY_FAULTS

    with pytest.raises(ConfigError):
        parse_faults([bad], allowed=MODALITY_FAULTS, actor="modality")


def test_hl7_mutations_edit_the_right_field() -> None:
    message = "MSH|^~\\&|A|B|C|D|20260101||ADT^A01^ADT_A01|X1|P|2.5.1\rPID|1||P1^^^I||DOE^J||19700101|F"
    assert "|ADT^A99^ADT_A01|" in mutations.hl7_unsupported_event(message)
    assert mutations.hl7_bad_table_value(message).endswith("|Q")
    assert "PID|1|||" in mutations.hl7_required_missing(message)
    assert "\r" not in mutations.lf_separators(message)


def test_cli_lists_the_catalogue(capsys) -> None:  # type: ignore[no-untyped-def]
    parser = argparse.ArgumentParser(prog="pacsim")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["faults", "list", "--json"])
    assert args.func(args) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [entry["id"] for entry in listed] == [f.id for f in CATALOGUE]
    with pytest.raises(SystemExit) as refused:  # refused as it is parsed: exit 2
        parser.parse_args(["faults", "run", "--target", "nonsense"])
    assert refused.value.code == 2
    assert "argument --target: expected AE@HOST:PORT" in capsys.readouterr().err
