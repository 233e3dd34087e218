# redlab: run everything as root (sudo make demo / sudo make test).
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: setup demo test unit clean doctor student-bundle ipvs-record ipvs-record-lab06

setup:
	@scripts/setup.sh

demo: setup
	$(VENV)/bin/redlab demo

test: setup
	$(PY) -m pytest -q -n 4 --dist worksteal

unit: setup
	$(PY) -m pytest -q -m "not network"

doctor: setup
	$(VENV)/bin/redlab doctor

clean:
	$(VENV)/bin/redlab clean

# The labs without their reference/ and broken/ folders, no tests: what students get (the
# Vagrantfile's VM is provisioned from it).  Needs no root: git and python3 only.
student-bundle:
	$(if $(wildcard $(PY)),$(PY),python3) -m redlab.cli bundle $(if $(OUT),--out $(OUT))

# Record the kernel IPVS's picks (tests/data/ipvs-kernel/) in a stock-kernel qemu guest
# (scripts/ipvs-vm); slow (minutes), never part of `make test`.  SCHEDULERS="rr wlc" for some.
# ipvs-record-lab06 records lab 06's load (labs/06-scheduling/kernel-picks.json) alone.
ipvs-record: ipvs-record-lab06
	$(PY) scripts/ipvs-record.py $(SCHEDULERS)

ipvs-record-lab06:
	$(PY) scripts/ipvs-record.py --lab06
