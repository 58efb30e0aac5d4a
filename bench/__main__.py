"""``python -m bench`` (what ``make bench`` runs): every scenario, the table, bench/results/latest.json."""

import sys

from bench.run import main

sys.exit(main())
