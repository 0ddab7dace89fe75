# The two commands the README starts with. Both create .venv on first use (scripts/setup_env.sh).
PY := .venv/bin/python

.PHONY: demo test env
env:
	bash scripts/setup_env.sh

demo: env
	$(PY) scripts/run_demo.py

test: env
	$(PY) -m pytest tests -q -p no:cacheprovider
