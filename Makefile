# Shortcuts; the scripts are what the README and CI use.
.PHONY: run test lint
run:
	bash scripts/run.sh
test:
	bash scripts/test.sh
lint:
	.venv/bin/python -m ruff check --fix recipes tests metrics notebooks
