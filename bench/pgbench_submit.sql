-- One closed-loop submitter of the throughput phase (pgbench -M extended, as
-- role bench): start a one-step instance, wait until its step has committed.
-- pgbench's tps is then completed one-step instances per second.
SELECT df.start('INSERT INTO bench_lat (id, started) VALUES (''{sys_instance_id}'', clock_timestamp())', 'tp') AS id \gset
SELECT bench_wait(:id, clock_timestamp(), 15);
