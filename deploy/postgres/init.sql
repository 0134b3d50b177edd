-- Sample database for docker-compose.yml (runs once, on an empty data directory).
-- Small on purpose, but with the shapes metricsd reports on: a foreign key without an
-- index (missing-index candidate once queried), an index nothing uses, dead tuples.
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;

CREATE TABLE customers (
    id         bigserial PRIMARY KEY,
    email      text NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE orders (
    id          bigserial PRIMARY KEY,
    customer_id bigint NOT NULL REFERENCES customers (id),  -- no index: sequential scans
    status      text NOT NULL,
    total_cents integer NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Nothing filters or sorts on total_cents: this index only costs writes.
CREATE INDEX orders_total_cents_idx ON orders (total_cents);

INSERT INTO customers (email)
SELECT 'user' || g || '@example.com' FROM generate_series(1, 20000) AS g;

INSERT INTO orders (customer_id, status, total_cents, created_at)
SELECT 1 + g % 20000,
       (ARRAY['new', 'paid', 'shipped', 'cancelled'])[1 + g % 4],
       (g * 37) % 50000,
       now() - (g % 1000) * interval '1 hour'
FROM generate_series(1, 200000) AS g;

-- Dead tuples until autovacuum passes.
UPDATE orders SET status = 'paid' WHERE status = 'new' AND id % 3 = 0;

ANALYZE;
