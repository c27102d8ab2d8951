# Two commands do everything on a fresh Debian/Ubuntu machine:
#   make demo   - the main job on the simulated campus
#   make test   - install what the tests need, then run the whole suite
VENV      := .venv
# Debian's interpreter, not a per-user one under /root: snmpsim drops privileges to `nobody`,
# which must be able to read the interpreter.
SYS_PY    := $(shell [ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import sys; exit(sys.version_info < (3, 11))' && echo /usr/bin/python3 || echo python3)
STAMP     := $(VENV)/.installed

.PHONY: test demo lint system-deps venv bench clean messages

$(STAMP): pyproject.toml
	$(SYS_PY) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

system-deps:
	./scripts/install-system-deps

test: system-deps $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/pytest $(PYTEST_ARGS)

demo: system-deps $(STAMP)
	$(VENV)/bin/eduedge demo

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

# The message catalogues (eduedge/core/i18n.py): the wrapped texts into the template, the template into the
# Chinese catalogue (new messages arrive empty or fuzzy: translate them in the .po), the .po into the .mo
# that ships. tests/test_i18n.py fails until every message is translated and the .mo compiled.
LOCALE := eduedge/locale
messages: $(STAMP)
	$(VENV)/bin/pybabel extract -F babel.cfg --project=eduedge --no-location --sort-output -o $(LOCALE)/eduedge.pot eduedge
	$(VENV)/bin/pybabel update -D eduedge -i $(LOCALE)/eduedge.pot -d $(LOCALE) --ignore-pot-creation-date --ignore-obsolete
	$(VENV)/bin/python scripts/compile-messages

bench: system-deps $(STAMP)
	$(VENV)/bin/python bench/snmp_poll.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .import_linter_cache
