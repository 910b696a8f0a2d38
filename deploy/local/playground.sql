-- ============================================================================
-- pg_durable playground: the sample schema and data of the user guide's
-- "Appendix: Test Data Setup", used by the guide's examples.
--
-- Loaded by `make run` (deploy/local/run.sh); also fine to run by hand:
--   psql -f deploy/local/playground.sql
-- Idempotent: tables are created if missing, and each table's sample rows are
-- inserted only while that table is empty (the guide's ON CONFLICT DO NOTHING
-- cannot stop duplicates on SERIAL keys), so running it again changes nothing
-- and leaves the rows your experiments added alone.
-- Tables and columns are exactly the guide's.
-- ============================================================================

SET client_min_messages = warning;  -- quiet "already exists, skipping"

CREATE SCHEMA IF NOT EXISTS playground;

-- Users table
CREATE TABLE IF NOT EXISTS playground.users (
    id SERIAL PRIMARY KEY,
    name VARCHAR(100) NOT NULL,
    email VARCHAR(255) UNIQUE NOT NULL,
    active BOOLEAN DEFAULT true,
    created_at TIMESTAMP DEFAULT now()
);

-- Orders table
CREATE TABLE IF NOT EXISTS playground.orders (
    id SERIAL PRIMARY KEY,
    user_id INTEGER REFERENCES playground.users(id),
    amount DECIMAL(10,2) NOT NULL,
    status VARCHAR(50) DEFAULT 'pending',
    created_at TIMESTAMP DEFAULT now(),
    processed_at TIMESTAMP
);

-- Task queue for job processing examples
CREATE TABLE IF NOT EXISTS playground.task_queue (
    id SERIAL PRIMARY KEY,
    payload JSONB NOT NULL,
    status VARCHAR(50) DEFAULT 'pending',
    priority INTEGER DEFAULT 0,
    created_at TIMESTAMP DEFAULT now(),
    started_at TIMESTAMP,
    completed_at TIMESTAMP
);

-- Logs table for function output
CREATE TABLE IF NOT EXISTS playground.logs (
    id SERIAL PRIMARY KEY,
    msg TEXT NOT NULL,
    level VARCHAR(20) DEFAULT 'info',
    created_at TIMESTAMP DEFAULT now()
);

-- Heartbeats table for cron examples
CREATE TABLE IF NOT EXISTS playground.heartbeats (
    id SERIAL PRIMARY KEY,
    ts TIMESTAMP NOT NULL,
    source VARCHAR(100) DEFAULT 'pg_durable'
);

-- Metrics table for aggregation examples
CREATE TABLE IF NOT EXISTS playground.metrics (
    id SERIAL PRIMARY KEY,
    metric_name VARCHAR(100) NOT NULL,
    metric_value DECIMAL(15,4) NOT NULL,
    recorded_at TIMESTAMP DEFAULT now()
);

-- Staging table for ETL examples
CREATE TABLE IF NOT EXISTS playground.staging (
    id SERIAL PRIMARY KEY,
    data JSONB,
    source_id INTEGER,
    processed_at TIMESTAMP
);

-- Target table for ETL examples
CREATE TABLE IF NOT EXISTS playground.target (
    id SERIAL PRIMARY KEY,
    data JSONB,
    source_id INTEGER,
    processed_at TIMESTAMP,
    loaded_at TIMESTAMP DEFAULT now()
);

-- Sample users (email is unique, so the guide's ON CONFLICT already suffices)
INSERT INTO playground.users (name, email, active) VALUES
    ('Alice Johnson', 'alice@example.com', true),
    ('Bob Smith', 'bob@example.com', true),
    ('Carol White', 'carol@example.com', true),
    ('David Brown', 'david@example.com', false),
    ('Eve Davis', 'eve@example.com', true)
ON CONFLICT (email) DO NOTHING;

-- Sample orders; the guide's user ids 1, 2, 3, 5 are Alice, Bob, Carol, Eve,
-- looked up by email so the rows stay right even if the users were reloaded.
INSERT INTO playground.orders (user_id, amount, status)
SELECT u.id, v.amount, v.status
FROM (VALUES
        (1, 'alice@example.com', 99.99, 'pending'),
        (2, 'alice@example.com', 149.50, 'completed'),
        (3, 'bob@example.com', 75.00, 'pending'),
        (4, 'carol@example.com', 200.00, 'processing'),
        (5, 'carol@example.com', 50.00, 'pending'),
        (6, 'eve@example.com', 125.00, 'completed')
     ) AS v(n, email, amount, status)
JOIN playground.users u ON u.email = v.email
WHERE NOT EXISTS (SELECT FROM playground.orders)
ORDER BY v.n;

-- Sample tasks
INSERT INTO playground.task_queue (payload, status, priority)
SELECT v.payload::jsonb, v.status, v.priority
FROM (VALUES
        (1, '{"type": "email", "to": "alice@example.com", "subject": "Welcome!"}', 'pending', 1),
        (2, '{"type": "email", "to": "bob@example.com", "subject": "Order Confirmation"}', 'pending', 2),
        (3, '{"type": "report", "name": "daily_sales"}', 'pending', 0),
        (4, '{"type": "cleanup", "target": "temp_files"}', 'completed', 0),
        (5, '{"type": "sync", "source": "external_api"}', 'pending', 3)
     ) AS v(n, payload, status, priority)
WHERE NOT EXISTS (SELECT FROM playground.task_queue)
ORDER BY v.n;

-- Staging data for ETL
INSERT INTO playground.staging (data, source_id)
SELECT v.data::jsonb, v.source_id
FROM (VALUES
        (1, '{"product": "Widget A", "qty": 10}', 1001),
        (2, '{"product": "Widget B", "qty": 25}', 1002),
        (3, '{"product": "Gadget X", "qty": 5}', 1003)
     ) AS v(n, data, source_id)
WHERE NOT EXISTS (SELECT FROM playground.staging)
ORDER BY v.n;

-- Sample metrics
INSERT INTO playground.metrics (metric_name, metric_value)
SELECT v.metric_name, v.metric_value
FROM (VALUES
        (1, 'cpu_usage', 45.5),
        (2, 'memory_usage', 72.3),
        (3, 'disk_io', 15.8),
        (4, 'network_in', 1024.0),
        (5, 'network_out', 512.5)
     ) AS v(n, metric_name, metric_value)
WHERE NOT EXISTS (SELECT FROM playground.metrics)
ORDER BY v.n;

-- Helper function for reports (used in examples)
CREATE OR REPLACE FUNCTION playground.generate_report(report_type TEXT)
RETURNS TEXT AS $$
BEGIN
    INSERT INTO playground.logs (msg, level)
    VALUES ('Generated report: ' || report_type, 'info');
    RETURN 'Report generated: ' || report_type || ' at ' || now()::text;
END;
$$ LANGUAGE plpgsql;

-- Summary
SELECT 'playground: ' || (SELECT count(*) FROM playground.users) || ' users, '
    || (SELECT count(*) FROM playground.orders) || ' orders, '
    || (SELECT count(*) FROM playground.task_queue) || ' tasks' AS status;
