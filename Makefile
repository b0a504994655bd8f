# Two entry points: `make demo` and `make test`. Both create .venv and install what they need.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: install demo test benchmark clean

install: $(VENV)/.installed

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[trainer,test]'
	touch $@

demo: install
	$(PY) -m example_project.demo

test: install
	$(PY) -m pytest

clean:
	rm -rf $(VENV) runs *.egg-info
