# lifeboat: two commands for a newcomer with Python 3.11 and make.
#   make demo   set up .venv, start the embedded PostgreSQL, run the recovery drill, print its summary
#   make test   set up (as root: the Debian packages some tests need), then unit + integration tests,
#               multi-host tests, ansible-lint, and the Molecule scenarios
PYTHON ?= python3
VENV   := .venv
BIN    := $(CURDIR)/$(VENV)/bin
export PATH := $(BIN):$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
export ANSIBLE_HOME := $(CURDIR)/.lifeboat/ansible-home
export NO_COLOR := 1

.PHONY: demo test venv server stop lint unit integration molecule clean

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.txt
	$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "lifeboat needs Python 3.11 or newer")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

server: venv
	$(BIN)/python scripts/pgserver.py start

stop:
	@if [ -x $(BIN)/python ]; then $(BIN)/python scripts/pgserver.py stop --all; fi

demo: server
	ansible-playbook playbooks/drill.yml
	@run="$$(ls -td .lifeboat/evidence/drill/*/ | head -n 1)"; echo; cat "$${run}report.md"; echo; \
	echo "Evidence: $(CURDIR)/$${run}"; \
	echo "Report (open it in a browser): $(CURDIR)/$${run}report.html"; \
	echo "Recovery report (Markdown, seed 003's): $(CURDIR)/$${run}recovery-report.md"

lint: venv
	ansible-lint

unit: venv
	$(BIN)/pytest -q tests/unit

integration: venv
	$(BIN)/pytest -q tests/integration

molecule: venv
	molecule test -s default < /dev/null
	molecule test -s partition < /dev/null
	@if problem=$$($(BIN)/python tests/tools/testhosts.py check); then molecule test -s hosts < /dev/null; \
	else echo "molecule scenario hosts skipped: $$problem"; fi

test: venv
	sh scripts/test-packages.sh
	$(MAKE) lint
	$(BIN)/pytest -n 2 --dist loadfile --no-loadscope-reorder --durations=25 tests/unit tests/integration
	$(MAKE) molecule

clean: stop
	@if [ -x $(BIN)/python ]; then $(BIN)/python scripts/pgserver.py stop --all --destroy; fi
	@# A container engine left by a killed test run (tests/tools/dockerengine.py; docs/containers.md).
	@if [ -x $(BIN)/python ] && [ "$$(id -u)" = 0 ]; then $(BIN)/python tests/tools/dockerengine.py stop; fi
	rm -rf .lifeboat
