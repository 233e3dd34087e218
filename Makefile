# redlab: run everything as root (sudo make demo / sudo make test).
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: setup demo test unit clean doctor

setup:
	@scripts/setup.sh

demo: setup
	$(VENV)/bin/redlab demo

test: setup
	$(PY) -m pytest -q

unit: setup
	$(PY) -m pytest -q -m "not network"

doctor: setup
	$(VENV)/bin/redlab doctor

clean:
	$(VENV)/bin/redlab clean
