# Two commands on a fresh Debian machine with Python 3.11 (run as root, or with sudo for apt):
#   make main   sets up and runs the main job (ResNet-20 grown on Fashion-MNIST)
#   make test   sets up and runs the test suite
PYTHON ?= python3
MODEL_DIR ?= runs/fashion_mnist_resnet20_grow

.PHONY: setup main test lint

setup:
	@if [ ! -d /usr/share/datasets/fashion-mnist ] || [ ! -f /usr/share/wordnet/data.noun ]; then \
	  (apt-get update -qq || true) && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	    dataset-fashion-mnist wordnet-base; fi
	$(PYTHON) -m pip install -q --disable-pip-version-check -r requirements-dev.txt
	$(PYTHON) -m pip install -q --disable-pip-version-check --no-deps -r requirements-pruning.txt

main: setup
	$(PYTHON) -m launchers.train \
	  --gin_file=configs/experiments/fashion_mnist_resnet20_grow.gin --model_dir=$(MODEL_DIR)

test: setup
	$(PYTHON) -m pytest -q -n 2 --dist worksteal --durations=25

lint:
	$(PYTHON) -m ruff check . && $(PYTHON) -m ruff format --check .
