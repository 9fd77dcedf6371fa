PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# torch build: cpu (default; from the PyTorch CPU index when it is reachable) or cuda (PyPI's default build).
TORCH ?= cpu
TORCH_VERSION := 2.13.0
CPU_INDEX := https://download.pytorch.org/whl/cpu
STAMP := $(VENV)/.installed-$(TORCH)

.PHONY: setup test demo demo-full clean

setup: $(STAMP)

$(STAMP): pyproject.toml Makefile
	@case "$(TORCH)" in cpu|cuda) ;; *) echo "TORCH must be cpu or cuda, got '$(TORCH)'"; exit 2;; esac
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	@if [ "$(TORCH)" = cuda ]; then \
		echo "installing torch $(TORCH_VERSION) from the default index (CUDA build on Linux, several GB)"; \
		$(PY) -m pip install --quiet torch==$(TORCH_VERSION); \
	elif $(PY) -c "import urllib.request; urllib.request.urlopen('$(CPU_INDEX)/torch/', timeout=10)" 2>/dev/null; then \
		echo "installing torch $(TORCH_VERSION) CPU build from $(CPU_INDEX)"; \
		$(PY) -m pip install --quiet torch==$(TORCH_VERSION) --index-url $(CPU_INDEX); \
	else \
		echo "$(CPU_INDEX) is not reachable: installing torch $(TORCH_VERSION) from the configured index"; \
		$(PY) -m pip install --quiet torch==$(TORCH_VERSION); \
	fi
	$(PY) -m pip install --quiet -e '.[dev,ray]'
	@if [ "$(TORCH)" = cpu ]; then $(PY) -c "import sys, torch; sys.exit(0 if torch.version.cuda is None else \
		'TORCH=cpu, but the index gave the CUDA build ' + torch.__version__ + ': keep it with make setup TORCH=cuda, ' \
		'or run make clean and make setup again where $(CPU_INDEX) is reachable')"; fi
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

test: setup
	$(PY) -m pytest -q tests

demo: setup
	$(VENV)/bin/zcproxy demo

demo-full: setup
	$(VENV)/bin/zcproxy demo --full

clean:
	rm -rf $(VENV) build *.egg-info
