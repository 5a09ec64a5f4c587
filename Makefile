# Two entry points: `make demo` and `make test`. Both create .venv when missing and
# reinstall only when pyproject.toml or this file changed (the stamp file tracks them).
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# Quantus, for the cross-check in tests/test_evaluate_quantus.py, goes in without its
# requirements: it requires opencv-python, the GUI build (needs libGL), which would
# overwrite the cv2 package of our opencv-python-headless. What it imports beyond our own
# dependencies (scikit-learn) is in the dev extra; the last step checks cv2 is still ours.
QUANTUS := quantus==0.6.0

.PHONY: demo test docs bench browser clean

$(STAMP): pyproject.toml Makefile
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,docs]'
	$(PY) -m pip install --quiet --no-deps $(QUANTUS) || \
		echo "WARNING: $(QUANTUS) did not install: the Quantus cross-check will be SKIPPED"
	$(PY) -c "import cv2, importlib.metadata as m; names = {d.metadata['Name'] for d in m.distributions()}; \
		assert 'opencv-python' not in names, 'opencv-python (the GUI build) is installed over the headless cv2'"
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m expresso_xai.cli demo --out demo_output

# The docs are built after pytest: tests/test_notebooks.py leaves each executed notebook
# in test-artifacts/notebooks/, and the site renders those outputs instead of running the
# notebooks again. They are built even when pytest failed (a broken reference is reported
# too), and `make test` fails if either did. The checks of the built site run after it.
test: $(STAMP) browser
	@$(PY) -m pytest -ra --ignore=tests/test_docs_site.py; status=$$?; \
	$(MAKE) docs && $(PY) -m pytest -q -ra tests/test_docs_site.py && exit $$status

# The documentation site (docs/site, Sphinx): built offline, warnings are errors, so a
# broken reference (on any page, API pages included) or docstring fails `make test`.
# Notebooks are rendered with outputs: from pytest's executed copies when current, else
# executed here (slower); the gallery draws its figures from the shipped samples during
# the build. The HTML lands in docs/_build/html/index.html.
docs: $(STAMP)
	$(PY) -m sphinx -W --keep-going -q -b html docs/site docs/_build/html

# The browser tests drive Debian's Chromium with Playwright: install it where apt can
# (as root or with passwordless sudo). Elsewhere they are skipped, loudly.
APT := DEBIAN_FRONTEND=noninteractive apt-get -y -q
browser:
	@if command -v chromium >/dev/null 2>&1; then :; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		echo "installing Debian's chromium for the browser tests"; \
		$(APT) install chromium >/dev/null 2>&1 || { $(APT) update >/dev/null && $(APT) install chromium >/dev/null; }; \
	elif command -v apt-get >/dev/null 2>&1 && sudo -n true 2>/dev/null; then \
		echo "installing Debian's chromium for the browser tests (sudo)"; \
		sudo -n $(APT) install chromium >/dev/null 2>&1 || { sudo -n $(APT) update >/dev/null && sudo -n $(APT) install chromium >/dev/null; }; \
	else \
		echo "WARNING: chromium is missing and apt-get is unavailable here: the browser tests will be SKIPPED"; \
	fi

bench: $(STAMP) browser
	$(PY) benchmarks/bench_landmarks.py

clean:
	rm -rf demo_output test-artifacts .pytest_cache docs/_build docs/site/_generated docs/site/notebooks docs/site/gallery.md
