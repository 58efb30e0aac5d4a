"""segsync: warehouse-to-Segment sync (reverse ETL) that runs in your own AWS account."""

__version__ = "0.1.0"
