# chainops.validator: developer and CI entry points. `make test` and (soon) `make lab`.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

ROOT      := $(abspath $(dir $(lastword $(MAKEFILE_LIST))))
CACHE     := $(ROOT)/.cache
VENV      := $(ROOT)/.venv
BIN       := $(VENV)/bin
PYTHON    ?= python3
COLL_ROOT := $(CACHE)/collections
COLL_LINK := $(COLL_ROOT)/ansible_collections/chainops/validator
SCENARIOS ?= $(sort $(notdir $(patsubst %/molecule.yml,%,$(wildcard molecule/*/molecule.yml))))
# Longest jobs first so they start at once; the rest fill the other lanes.
MOLECULE_SLOW  := datadog_agent polykey snapshot_restore health_checker
MOLECULE_ORDER := $(foreach s,$(MOLECULE_SLOW),$(filter $(s),$(SCENARIOS))) $(filter-out $(MOLECULE_SLOW),$(SCENARIOS))
MOLECULE_JOBS  ?= 2
# `make test` runs the lab tests, pytest (unit), sanity, lint and every scenario together in
# TEST_JOBS lanes, the longest first. CI's budget is 35 minutes in all (docs/CONTRIBUTING.md).
TEST_ORDER     := lab unit sanity lint inputs $(MOLECULE_ORDER)
TEST_JOBS      ?= 4
UNIT_WORKERS   ?= 2
# Podman networks the lab, the lab tests and the scenarios create (each must have DNS).
NETWORKS := chainops-lab chainops-labtest $(sort $(shell sed -n 's/^ *network: *\([A-Za-z0-9_.-]*\).*/\1/p' molecule/*/molecule.yml))
DOCTOR   := $(ROOT)/tests/harness/doctor.sh

export CONTAINERS_CONF := $(ROOT)/tests/harness/containers.conf
# Collections of the `ansible` package are found on sys.path (COLLECTIONS_SCAN_SYS_PATH).
export ANSIBLE_COLLECTIONS_PATH := $(COLL_ROOT)
export CHAINOPS_CACHE := $(CACHE)
export PATH := $(BIN):$(PATH)
export ANSIBLE_FORCE_COLOR := false
export PY_COLORS := 0
# Where the virtualenv's Python keeps the bytecode of Ansible's modules (tests/harness/chainops_zipimport_cache.py).
export CHAINOPS_ZIPIMPORT_CACHE := $(CACHE)/zipimport

.PHONY: help setup system-deps networks doctor venv collection-link image artifacts lint sanity unit molecule test ee lab lab-status lab-playbook lab-down lab-test lab-bench bench-tools restore-bench clean

help:
	@echo "make test   - set up (virtualenv, Debian packages, local image) and run every test"
	@echo "make lab    - set up and build the local lab topology (moto + podman), then print its status"
	@echo "make doctor - try each capability the lab and tests need (container DNS, systemd, WireGuard, nftables, ...)"
	@echo "make lab-playbook PLAYBOOK=rolling_upgrade.yml ARGS='-e node_version=...' - run a playbook against the lab"
	@echo "make lab-down - remove everything the lab made"
	@echo "make ee     - build the execution environment image (execution-environment.yml) on a local Debian base"
	@echo "make lint | sanity | unit | molecule [SCENARIOS=node] - run one layer"
	@echo "make restore-bench [BENCH_ARGS='--skip-sync --size 2048'] - restore speed against its baselines (tests/bench/restore_bench.py)"

system-deps:
	@$(ROOT)/tests/harness/system-deps.sh

$(BIN)/.installed: requirements.txt requirements-test.txt
	@echo "==> virtualenv $(VENV)"
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/pip install -q -U pip wheel
	@$(BIN)/pip install -q -r requirements.txt -r requirements-test.txt
	@touch $@

# Tests run thousands of tasks, and each compiled Ansible's module code from its zip anew: the
# virtualenv's Python keeps that bytecode in CHAINOPS_ZIPIMPORT_CACHE (the test image does the same).
ZIPIMPORT_HOOK := $(VENV)/.zipimport-hook
$(ZIPIMPORT_HOOK): $(BIN)/.installed tests/harness/chainops_zipimport_cache.py
	@site=$$($(BIN)/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'); \
	  cp $(ROOT)/tests/harness/chainops_zipimport_cache.py "$$site/" && \
	  echo 'import chainops_zipimport_cache' > "$$site/chainops_zipimport_cache.pth"
	@touch $@

venv: $(BIN)/.installed $(ZIPIMPORT_HOOK)
	@mkdir -p -m 0700 $(CHAINOPS_ZIPIMPORT_CACHE)

# Ansible finds the collection by FQCN through this link to the working tree.
collection-link:
	@mkdir -p $(dir $(COLL_LINK))
	@ln -sfn $(ROOT) $(COLL_LINK)

image: system-deps
	@mkdir -p $(CACHE)
	@$(ROOT)/tests/harness/build-image.sh > $(CACHE)/image-name
	@echo "==> test image: $$(cat $(CACHE)/image-name)"

artifacts: system-deps
	@$(ROOT)/tests/harness/fetch-artifacts.sh

# A network made before the DNS plugin was installed is removed, so the next run recreates it with DNS.
networks: system-deps
	@$(ROOT)/tests/harness/networks.sh $(NETWORKS)

setup: system-deps venv collection-link image artifacts networks

# Each capability tried once (tests/harness/doctor.sh), with a one-line fix for what is missing.
# `make lab` and `make test` run it right after the install step, before any real work.
doctor:
	@echo "==> doctor"
	@$(DOCTOR)

lint: venv collection-link
	@echo "==> ansible-lint (production profile), changelog fragments, YAML copies, role README variable tables"
	@$(BIN)/ansible-lint --offline
	@PATH=$(BIN):$$PATH $(ROOT)/tests/harness/changelog_check.sh
	@$(BIN)/python $(ROOT)/tests/harness/yaml_duplicates.py
	@$(BIN)/python $(ROOT)/tests/harness/role_docs.py --check

sanity: venv
	@$(ROOT)/tests/harness/sanity.sh

# No container image needed: pytest's tests run on the controller and against moto.
unit: system-deps venv collection-link artifacts
	@echo "==> pytest"
	@rc=0; $(BIN)/pytest -q -n $(UNIT_WORKERS) --dist loadfile tests/unit tests/integration || rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest collected no tests: treating as failure" >&2; exit 1; fi; exit $$rc

molecule: setup
	@echo "==> molecule ($(MOLECULE_JOBS) lanes): $(MOLECULE_ORDER)"
	@CHAINOPS_TEST_IMAGE=$$(cat $(CACHE)/image-name) $(ROOT)/tests/harness/lanes.sh $(MOLECULE_JOBS) $(MOLECULE_ORDER)

test:
	@mkdir -p $(CACHE) && date +%s > $(CACHE)/test-started
	@$(MAKE) --no-print-directory setup
	@$(MAKE) --no-print-directory doctor
	@echo "==> $(TEST_JOBS) lanes: $(TEST_ORDER)"
	@CHAINOPS_TEST_STARTED=$$(cat $(CACHE)/test-started) CHAINOPS_TEST_IMAGE=$$(cat $(CACHE)/image-name) \
	  $(ROOT)/tests/harness/lanes.sh $(TEST_JOBS) $(TEST_ORDER)
	@echo "==> all tests passed"

# The AWX execution environment, built with ansible-builder here (tests/harness/ee/build-ee.sh); prints its name.
ee: setup
	@CHAINOPS_TEST_IMAGE=$$(cat $(CACHE)/image-name) $(ROOT)/tests/harness/ee/build-ee.sh

# The local lab (lab/lab.sh): moto as AWS, podman containers as instances, the real playbooks.
lab: setup
	@$(MAKE) --no-print-directory doctor
	@CHAINOPS_TEST_IMAGE=$$(cat $(CACHE)/image-name) $(ROOT)/lab/lab.sh up

lab-status: venv collection-link
	@$(ROOT)/lab/lab.sh status

# Any playbook against the running lab, e.g. make lab-playbook PLAYBOOK=rolling_upgrade.yml ARGS='-e node_version=...'
lab-playbook: venv collection-link
	@$(ROOT)/lab/lab.sh playbook $(or $(PLAYBOOK),site.yml) $(ARGS)

lab-down:
	@$(ROOT)/lab/lab.sh down

# The lab's own tests: a separate lab (chainops-labtest) built, operated and removed by tests/lab.
lab-test: setup
	@echo "==> lab tests (tests/lab)"
	@rc=0; CHAINOPS_TEST_IMAGE=$$(cat $(CACHE)/image-name) $(BIN)/pytest -x -q tests/lab || rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "pytest collected no lab tests: treating as failure" >&2; exit 1; fi; exit $$rc

# No-op converge of the lab against ping tasks (tests/bench/converge_bench.py); BENCH_ARGS=--reuse for the dev lab.
lab-bench: setup
	@CHAINOPS_TEST_IMAGE=$$(cat $(CACHE)/image-name) $(BIN)/python $(ROOT)/tests/bench/converge_bench.py $(BENCH_ARGS)

# The benchmarks' baselines (awscli) live in their own virtualenv, apart from the test tools.
BENCH_VENV := $(CACHE)/bench-venv
$(BENCH_VENV)/.installed: requirements-bench.txt
	@echo "==> benchmark tools $(BENCH_VENV)"
	@test -x $(BENCH_VENV)/bin/python || $(PYTHON) -m venv $(BENCH_VENV)
	@$(BENCH_VENV)/bin/pip install -q -r requirements-bench.txt
	@touch $@

bench-tools: $(BENCH_VENV)/.installed

restore-bench: setup bench-tools
	@$(BIN)/python $(ROOT)/tests/bench/restore_bench.py --aws $(BENCH_VENV)/bin/aws $(BENCH_ARGS)

clean:
	rm -rf $(CACHE) $(VENV)
