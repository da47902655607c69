# The two commands of the README: `make bench` (the main job) and `make test`.
# Both install what is missing first: Debian packages, then a virtualenv.
VENV    := .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed-stamp
ARGS    ?=
DEBS    := iproute2 util-linux git mosquitto

.PHONY: setup bench test lint gc clean

$(STAMP): pyproject.toml
	@missing=""; for d in $(DEBS); do dpkg -s $$d >/dev/null 2>&1 || missing="$$missing $$d"; done; \
	 if [ -n "$$missing" ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; fi
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

bench: setup
	$(VENV)/bin/ipcbench run $(ARGS)

lint: setup
	$(VENV)/bin/ruff check bench transports runtime tests
	$(VENV)/bin/ruff format --check bench transports runtime tests
	$(VENV)/bin/mypy

test: lint
	$(PY) -m pytest $(ARGS)

gc: setup
	$(VENV)/bin/ipcbench gc

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache
