# The docs site (docs/, mkdocs.yml) and the README's tour.
# Included by the top-level Makefile, which defines PYTHON, BIN and STAMP.
#
# mkdocs-material lives in a virtualenv of its own: none of its packages is the project's, and the site
# needs nothing of the project's (the reference page is generated from the committed JSON Schema).

DOCS_VENV := .venv-docs
DOCS_STAMP := $(DOCS_VENV)/.installed
DOCS_PINS := docs/requirements.txt

$(DOCS_STAMP): $(DOCS_PINS)
	$(PYTHON) -m venv $(DOCS_VENV)
	$(DOCS_VENV)/bin/pip install --quiet --upgrade pip
	$(DOCS_VENV)/bin/pip install --quiet -r $(DOCS_PINS)
	touch $(DOCS_STAMP)

# --strict turns every warning into a failure: a link to a missing page or anchor (mkdocs.yml's
# validation settings), a page left out of the navigation. NO_MKDOCS_2_WARNING silences a banner
# mkdocs-material prints about its own end of life, which is not about this site.
docs: $(DOCS_STAMP) ## Build the docs site into site/ (mkdocs --strict: a warning, broken link or anchor fails)
	NO_MKDOCS_2_WARNING=1 $(DOCS_VENV)/bin/mkdocs build --strict

tour: $(STAMP) ## Run the README's five-minute tour on a copy of the demo; write its real outputs into README.md
	$(BIN)/python -m tests.tour

.PHONY: docs tour
