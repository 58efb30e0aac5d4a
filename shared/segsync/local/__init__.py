"""Local mode: the same handlers on a laptop, with moto as AWS and a capture endpoint as Segment."""

from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[3]
"""The segsync checkout local mode runs from: it holds functions/ (the handlers) and demo/."""
