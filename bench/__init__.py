"""``make bench``: segsync's speed, memory and cost, measured side by side with the official Segment library."""
