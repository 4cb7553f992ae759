# Corvid's build. Every tool is pinned and installed into .build/ or .venv/ by
# the targets below, so a clean checkout needs only Go, Python 3, npm and make.
SHELL := /bin/bash
.DEFAULT_GOAL := help

BUILD       := .build
VENV        := .venv
PY          := $(VENV)/bin/python
BUF_VERSION := 1.75.0
# google-proto-files carries google/api/*.proto and google/rpc/status.proto.
GOOGLE_PROTO_FILES_VERSION := 6.0.1
BUF         := $(BUILD)/npm/node_modules/.bin/buf
PROTODEPS   := google/api/annotations.proto google/api/http.proto google/rpc/status.proto
BIN         := bin/corvid
GO_TEST_FLAGS ?= -race -count=1 -timeout 20m

.PHONY: help
help: ## Show the targets.
	@grep -hE '^[a-z][a-z-]*:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

# ---- tools -----------------------------------------------------------------

$(BUF):
	npm install --silent --no-audit --no-fund --prefix $(BUILD)/npm \
		@bufbuild/buf@$(BUF_VERSION) google-proto-files@$(GOOGLE_PROTO_FILES_VERSION)
	@touch $@

$(BUILD)/protodeps/.stamp: $(BUF)
	rm -rf $(BUILD)/protodeps
	for f in $(PROTODEPS); do \
		mkdir -p $(BUILD)/protodeps/$$(dirname $$f) && \
		cp $(BUILD)/npm/node_modules/google-proto-files/$$f $(BUILD)/protodeps/$$f || exit 1; \
	done
	@touch $@

$(VENV)/.stamp: tools/requirements.txt
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check -r tools/requirements.txt
	@touch $@

# ONNX's backend node tests, written from the case definitions in the onnx wheel.
NODE_TESTS := $(BUILD)/onnx-node-tests
$(NODE_TESTS)/.stamp: $(VENV)/.stamp testdata/conformance/gen_node_tests.py
	$(PY) testdata/conformance/gen_node_tests.py $(NODE_TESTS)
	@touch $@

.PHONY: node-tests
node-tests: $(NODE_TESTS)/.stamp ## Write ONNX's backend node tests to .build/onnx-node-tests.

.PHONY: tools
tools: $(BUF) $(BUILD)/protodeps/.stamp $(VENV)/.stamp $(VENV)/.client-stamp ## Install pinned tools into .build/ and .venv/ (with the Python SDK).

# ---- code generation ---------------------------------------------------------

.PHONY: generate
generate: tools ## Regenerate gen/ (Go, gRPC, gateway, OpenAPI, Python) from proto/.
	rm -rf gen/go gen/python gen/openapi/*.json
	$(BUF) generate
	mkdir -p gen/python
	$(PY) -m grpc_tools.protoc -Iproto -I$(BUILD)/protodeps \
		--python_out=gen/python --pyi_out=gen/python --grpc_python_out=gen/python \
		proto/corvid/v1/*.proto
	$(PY) client/python/sync_stubs.py

.PHONY: checkgenerate
checkgenerate: generate ## Fail if gen/ differs from what proto/ generates.
	@if [ -n "$$(git status --porcelain -- gen client/python/src/corvid/v1)" ]; then \
		git status --porcelain -- gen client/python/src/corvid/v1; \
		echo "gen/ is not what 'make generate' produces: run it and commit the result"; exit 1; \
	fi

# ---- build and run -------------------------------------------------------------

.PHONY: build
build: ## Build bin/corvid.
	go build -o $(BIN) ./cmd/corvid

.PHONY: run
run: build ## Build and serve the embedded default model (gRPC :8500, REST :8501, admin :8502).
	$(BIN) serve

# ---- checks --------------------------------------------------------------------

.PHONY: lint
lint: tools ## buf lint and format, gofmt, go vet.
	$(BUF) lint
	$(BUF) format --diff --exit-code proto
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' | grep -v '^gen/')); \
		if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	go vet ./...

.PHONY: breaking
breaking: tools ## buf breaking (WIRE_JSON) of the working tree against the main branch.
	rm -rf $(BUILD)/against && mkdir -p $(BUILD)/against/$(BUILD)
	git archive main buf.yaml proto | tar -x -C $(BUILD)/against
	cp -r $(BUILD)/protodeps $(BUILD)/against/$(BUILD)/protodeps
	cd $(BUILD)/against && $(abspath $(BUF)) build -o ../against.binpb
	$(BUF) build -o $(BUILD)/current.binpb
	$(BUF) breaking $(BUILD)/current.binpb --against $(BUILD)/against.binpb

.PHONY: test
test: checkgenerate lint breaking node-tests ## Install what is needed, check generation and lint, run all Go and Python tests.
	CORVID_REQUIRE_CONFORMANCE=1 go test $(GO_TEST_FLAGS) ./...
	$(MAKE) test-allocs
	$(MAKE) pytest
	$(MAKE) pytest-client

.PHONY: test-allocs
test-allocs: ## Allocation-count tests, which only mean something without -race.
	go test -count=1 -run 'Allocat|NoAllocs' ./kernels/ ./server/runtime/

.PHONY: conformance
conformance: node-tests ## ONNX's backend node tests against testdata/conformance/expected.txt, with per-operator counts.
	CORVID_REQUIRE_CONFORMANCE=1 go test -run '^TestONNXNodeConformance$$' -count=1 -v ./server/runtime/

.PHONY: conformance-update
conformance-update: node-tests ## Rewrite the must-pass list in testdata/conformance/expected.txt from a run.
	CORVID_REQUIRE_CONFORMANCE=1 go test -run '^TestONNXNodeConformance$$' -count=1 -v ./server/runtime/ -args -conformance.update

.PHONY: pytest
pytest: build $(VENV)/.stamp ## Python tests (reference comparison with ONNX Runtime over gRPC).
	CORVID_BIN=$(abspath $(BIN)) PYTHONPATH=gen/python $(PY) -m pytest -q -rP tests/python

# The Python SDK, installed editable into the venv (its build backend is
# pinned in tools/requirements.txt, so no build isolation download).
$(VENV)/.client-stamp: $(VENV)/.stamp client/python/pyproject.toml
	$(VENV)/bin/pip install --quiet --disable-pip-version-check --no-build-isolation -e client/python
	@touch $@

.PHONY: pytest-client
pytest-client: build $(VENV)/.client-stamp ## Python SDK tests (client/python) against a real server.
	CORVID_BIN=$(abspath $(BIN)) $(PY) -m pytest -q client/python/tests

.PHONY: bench-client
bench-client: build $(VENV)/.client-stamp ## Python SDK latency and throughput.
	CORVID_BIN=$(abspath $(BIN)) $(PY) client/python/bench_client.py

.PHONY: bench
bench: ## Serving benchmarks: latency beside a bare gRPC round trip and echo, cold start, idle RSS.
	go test -run '^$$' -bench '^BenchmarkServing(Overhead)?$$' -benchtime 3000x -count 3 ./bench/
	go test -run '^$$' -bench 'ColdStart|IdleRSS' -benchtime 5x ./bench/

.PHONY: bench-quant
bench-quant: $(VENV)/.stamp ## int8 against fp32: GEMM kernels beside ONNX Runtime, the executor, and end to end.
	go test -run '^$$' -bench 'BenchmarkGemmU8S8$$|BenchmarkSgemm$$' -cpu 1 ./kernels/
	$(PY) bench/ort/gemm.py
	go test -run '^$$' -bench BenchmarkVsORT -benchtime 1x ./kernels/
	go test -run '^$$' -bench 'BenchmarkParallelScaling|BenchmarkLineRoundTrip|BenchmarkHugeWeights|BenchmarkAdaptTiles|BenchmarkGemmU8S8Dequant' -benchtime 1x ./kernels/
	go test -run '^$$' -bench 'BenchmarkQuantModes|BenchmarkSoftmax32' -benchtime 200x ./server/runtime/
	go test -run '^$$' -bench BenchmarkQuantServing -benchtime 200x ./bench/
	go test -run '^$$' -bench BenchmarkKernelLinger -benchtime 6x ./bench/

.PHONY: bench-lifecycle
bench-lifecycle: ## Batching on and off at 64 clients; the cost of a shadow version on latency.
	go test -run '^$$' -bench BenchmarkBatching -benchtime 4000x ./bench/
	go test -run '^$$' -bench BenchmarkShadowCost -benchtime 2000x ./bench/

.PHONY: clean
clean: ## Remove built binaries and installed tools.
	rm -rf bin $(BUILD) $(VENV)
