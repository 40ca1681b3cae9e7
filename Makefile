# tritongate — build, test and demo targets. `make help` lists them.
SHELL := /bin/bash
MODULE := github.com/tritongate/tritongate
GOBIN  := $(shell go env GOPATH)/bin
export PATH := $(GOBIN):$(PATH)

# Pinned code generators: the committed generated code is what these versions produce.
PROTOC_GEN_GO_VERSION      := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.6.2
PROTOC_VERSION             := 3.21.12

INFERENCE_PROTOS := grpc_service.proto model_config.proto
INFERENCE_PKG    := $(MODULE)/proto/inference
ONNX_PKG         := $(MODULE)/proto/onnx

# MLflow's REST schema (proto/README.md): each file is compiled under the name its importers
# use (-I roots, most specific first: proto/mlflow/compat holds two forwarding files for the
# names model_registry.proto imports) and generated next to itself (protoc-gen-go's module=
# mode writes each file into the directory of its Go import path).
MLFLOW_DIR      := proto/mlflow
MLFLOW_PROTOS   := model_registry.proto databricks.proto scalapb/scalapb.proto mlflow_artifacts.proto \
                   mlflow/protos/databricks.proto mlflow/protos/scalapb/scalapb.proto
MLFLOW_INCLUDES := -I $(MLFLOW_DIR)/compat -I $(MLFLOW_DIR)/databricks -I $(MLFLOW_DIR)/artifacts -I $(MLFLOW_DIR)
# file=import path;package name (scalapb.proto's own go_package would name its package "protos")
MLFLOW_GO_PKGS  := model_registry.proto=$(MODULE)/proto/mlflow;mlflow \
                   databricks.proto=$(MODULE)/proto/mlflow/databricks;databricks \
                   scalapb/scalapb.proto=$(MODULE)/proto/mlflow/scalapb;scalapb \
                   mlflow_artifacts.proto=$(MODULE)/proto/mlflow/artifacts;artifacts \
                   mlflow/protos/databricks.proto=$(MODULE)/proto/mlflow/compat/mlflow/protos;protos \
                   mlflow/protos/scalapb/scalapb.proto=$(MODULE)/proto/mlflow/compat/mlflow/protos/scalapb;scalapb

ORT_VERSION := 1.24.3
ORT_DIR     := .cache/onnxruntime/$(ORT_VERSION)
ORT_LIB     := $(ORT_DIR)/libonnxruntime.so.1

.PHONY: help tools proto proto-check build test test-short fuzz bench demo vet fmt-check clean ort interop interop-triton

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

tools: ## install the pinned protoc plugins into $(GOBIN)
	go install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
	go install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)

proto: ## regenerate Go code from the vendored .proto files
	@protoc --version | grep -q '$(PROTOC_VERSION)' || { echo "make proto: need protoc $(PROTOC_VERSION) (apt-get install protobuf-compiler), have: $$(protoc --version)" >&2; exit 1; }
	cd proto/inference && protoc -I . \
	  --go_out=. --go_opt=paths=source_relative \
	  $(foreach p,$(INFERENCE_PROTOS),--go_opt=M$(p)=$(INFERENCE_PKG)) \
	  --go-grpc_out=. --go-grpc_opt=paths=source_relative \
	  $(foreach p,$(INFERENCE_PROTOS),--go-grpc_opt=M$(p)=$(INFERENCE_PKG)) \
	  $(INFERENCE_PROTOS)
	cd proto/inference && protoc -I . --include_imports --descriptor_set_out=health.binpb health.proto
	cd proto/onnx && protoc -I . \
	  --go_out=. --go_opt=paths=source_relative --go_opt=Monnx.proto=$(ONNX_PKG) \
	  onnx.proto
	protoc $(MLFLOW_INCLUDES) \
	  --go_out=. --go_opt=module=$(MODULE) \
	  $(foreach m,$(MLFLOW_GO_PKGS),'--go_opt=M$(m)') \
	  $(MLFLOW_PROTOS)

proto-check: proto ## fail if the committed generated code differs from what `make proto` makes
	@git diff --exit-code --stat -- proto/ || { echo "generated code in proto/ is stale: run 'make proto' and commit" >&2; exit 1; }
	@test -z "$$(git status --porcelain --untracked-files=all -- proto/)" || { echo "make proto created untracked files in proto/" >&2; git status --short -- proto/ >&2; exit 1; }

ort: $(ORT_LIB) ## fetch the ONNX Runtime library (npm package onnxruntime-node) into .cache/

$(ORT_LIB):
	./scripts/fetch-onnxruntime.sh $(ORT_DIR)

build: ## build every binary into bin/
	go build -o bin/ ./cmd/...

vet: ## go vet
	go vet ./...

fmt-check: ## fail if any file needs gofmt
	@out=$$(gofmt -l $$(git ls-files '*.go' | grep -v '\.pb\.go$$')); test -z "$$out" || { echo "gofmt needed:"; echo "$$out"; exit 1; }

# make test bounds fuzzing by executions, not time: a duration -fuzztime can
# fail with "context deadline exceeded" and no crasher (golang/go#75804).
test: ort ## run every test (race detector on), then each fuzz target briefly (5000 inputs)
	go vet ./...
	go test -race -count=1 ./...
	$(MAKE) --no-print-directory fuzz FUZZTIME=5000x

test-short: ort ## quick tests without -race
	go test -short ./...

FUZZTIME ?= 30s
fuzz: ## run every fuzz target for FUZZTIME each (a duration, or Nx inputs)
	@set -e; for dir in $$(grep -l '^func Fuzz' --include='*_test.go' -r . | xargs -n1 dirname | sort -u); do \
	  for f in $$(grep -ho '^func Fuzz[A-Za-z0-9_]*' $$dir/*_test.go | cut -d' ' -f2); do \
	    echo "fuzz $$dir $$f ($(FUZZTIME))"; \
	    go test -run='^$$' -fuzz="^$$f$$" -fuzztime=$(FUZZTIME) $$dir; \
	  done; \
	done

bench: ort ## run the Go benchmarks
	go test -run='^$$' -bench=. -benchmem ./...

# make interop: the real peers (interop/setup.sh: MLflow 3, versitygw, tritonclient,
# perf_analyzer, tritonserver 2.51 in .cache/interop) and the suites run against them.
interop: build ort ## install the real peers (MLflow, versitygw, Triton's clients) and run the interop suites
	./interop/setup.sh
	go test -tags interop -count=1 -timeout 40m ./interop/...

interop-triton: build ort ## only the suites against the real tritonserver 2.51 (and NVIDIA's example scenarios)
	./interop/setup.sh
	go test -tags interop -count=1 -timeout 30m -run 'TestRealTriton|TestNVIDIA' -v ./interop/

demo: build ort ## build a model repository from the bundled models, serve it with tritonlite behind the gateway, run inferences
	./scripts/demo.sh

clean:
	rm -rf bin/ .cache/demo
