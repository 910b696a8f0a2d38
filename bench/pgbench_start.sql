-- Open-loop submitter of the throughput phase (pgbench -M extended, as role
-- bench): start a one-step instance and go on; bench/run.sh measures the
-- completions from the recorded timestamps.
SELECT df.start('INSERT INTO bench_lat (id, started) VALUES (''{sys_instance_id}'', clock_timestamp())', 'tpo');
