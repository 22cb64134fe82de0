# Two commands matter on a fresh clone: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin

.PHONY: demo test test-fast lint bench fuzz soak venv shell clean

$(BIN)/pacsim: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(BIN)/pacsim

venv: $(BIN)/pacsim

## shell: a shell with .venv activated, so `pacsim` and `pytest` are on PATH (exit leaves it)
shell: venv
	@echo "pacsim is on PATH in this shell; 'exit' leaves it"
	@. $(BIN)/activate && exec $${SHELL:-/bin/sh} -i

## demo: the main job on the embedded default: the golden-path scenario of every modality
## against the built-in archive and RIS, with the report (HTML/JSON/JUnit in reports/demo)
demo: venv
	$(BIN)/pacsim run scenarios/golden-path-*.yaml --report-dir reports/demo

## test: the whole suite, the CI command (tests needing DCMTK, dicom3tools, Orthanc,
## Prometheus or Docker skip without them, fail in CI)
test: venv
	$(BIN)/pytest

## lint: the layer contract in pyproject.toml (docs/architecture.md); CI fails on a violation
lint: venv
	$(BIN)/lint-imports

## test-fast: only the tests that need no external tool and are not slow (markers in
## pyproject.toml; tests/unit/test_lanes.py keeps them exact)
test-fast: venv
	$(BIN)/pytest -m "not (dcmtk or orthanc or dciodvfy or prometheus or docker or chromium or slow)"

## bench: throughput against DCMTK and Orthanc, printed as ratios (see benchmarks/)
bench: venv
	$(BIN)/python -m benchmarks.modality_store
	$(BIN)/python -m benchmarks.archive_ingest
	$(BIN)/python -m benchmarks.archive_associations
	$(BIN)/python -m benchmarks.worklist_load
	$(BIN)/python -m benchmarks.store_load
	$(BIN)/python -m benchmarks.legacy_seed --studies 2000
	$(BIN)/python -m benchmarks.migration --studies 500
	$(BIN)/python -m benchmarks.probe_overhead --orthanc
	$(BIN)/python -m benchmarks.sandbox_day --pace 600 --hours 24

## fuzz: the parser property tests with many examples (hypothesis profile "fuzz") and the
## socket fuzzer for FUZZ_SECONDS (default 600; `make test` runs it for 120 s)
FUZZ_SECONDS ?= 600
fuzz: venv
	mkdir -p reports
	HYPOTHESIS_PROFILE=fuzz FUZZ_SECONDS=$(FUZZ_SECONDS) FUZZ_REPORT=reports/fuzz.json \
	    $(BIN)/pytest tests/property tests/fuzz -p no:cacheprovider --timeout=0 -s -q

## soak: SOAK_MINUTES (default 30) of mixed worklist/MPPS/C-STORE/HL7/DICOMweb load against
## the built-in RIS and archive; RSS, open files and threads sampled, verdict flat or not
## (reports/soak/soak.json and soak.txt; exit 1 when not flat)
SOAK_MINUTES ?= 30
soak: venv
	SOAK_MINUTES=$(SOAK_MINUTES) $(BIN)/python -m benchmarks.soak --report-dir reports/soak

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
