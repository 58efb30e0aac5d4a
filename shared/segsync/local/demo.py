"""The demo warehouse: deterministic users and events in a DuckDB file, built once."""

from __future__ import annotations

from pathlib import Path

import duckdb

DEMO_USERS = 5_000
DEMO_EVENTS = 50_000

# Plain arithmetic on the row number (no random(), no hash()): the same rows on every machine.
USERS_SQL = """
CREATE TABLE users AS
SELECT
    printf('user_%06d', i)                                                 AS user_id,
    'user' || i || '@example.com'                                          AS email,
    (['Ada', 'Grace', 'Alan', 'Edsger', 'Barbara', 'Donald', 'Frances', 'Ken'])[1 + i % 8] || ' '
        || (['Lovelace', 'Hopper', 'Turing', 'Dijkstra', 'Liskov', 'Knuth', 'Allen', 'Thompson'])
           [1 + (i * 7) % 8]
                                                                           AS name,
    (['free', 'starter', 'pro', 'enterprise'])[1 + (i * 13) % 4]          AS plan,
    TIMESTAMP '2024-01-01 00:00:00' + to_seconds((i * 7919) % 31536000)    AS created_at,
    ((i * 3571) % 100000 / 100.0)::DECIMAL(12, 2)                          AS lifetime_value,
    (i % 5 <> 0)                                                           AS is_active,
    (['US', 'GB', 'DE', 'FR', 'JP', 'BR'])[1 + (i * 11) % 6]              AS country
FROM range(1, {users} + 1) AS t(i)
"""

EVENTS_SQL = """
CREATE TABLE events AS
SELECT
    printf('evt_%08d', i)                                                  AS event_id,
    printf('user_%06d', 1 + (i * 13) % {users})                            AS user_id,
    (['Page Viewed', 'Product Added', 'Order Completed', 'Signed In'])[1 + (i * 17) % 4] AS event_name,
    TIMESTAMP '2025-01-01 00:00:00' + to_seconds((i * 104729) % 31536000)  AS occurred_at,
    'SKU-' || lpad(((i * 31) % 500)::VARCHAR, 4, '0')                      AS product_sku,
    1 + (i * 7) % 5                                                        AS quantity,
    ((i * 2953) % 50000 / 100.0)::DECIMAL(10, 2)                           AS revenue,
    '/products/' || ((i * 31) % 500)                                       AS page_path
FROM range(1, {events} + 1) AS t(i)
"""


def build_warehouse(path: Path, users: int = DEMO_USERS, events: int = DEMO_EVENTS) -> bool:
    """Create the demo warehouse unless it exists; returns whether it was built now.

    Reusing an existing file lets a second demo run see the same rows (and, with incremental
    syncs, send nothing new); deleting it starts over with identical rows.
    """
    if path.exists():
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".building")
    partial.unlink(missing_ok=True)
    with duckdb.connect(str(partial)) as con:
        con.execute(USERS_SQL.format(users=users))
        con.execute(EVENTS_SQL.format(users=users, events=events))
    partial.rename(path)
    return True
