-- Secrets: set, replace, list and delete; values never come back out, and errors from
-- set_secret do not write the statement (which holds the value) to the server log.
\set SHOW_CONTEXT never
-- Ids start at this file's own point, so its expected output does not depend on the others.
DO $$ BEGIN PERFORM setval(pg_get_serial_sequence('orchestration.' || t, 'id'), 800000, false)
  FROM unnest(ARRAY['agents', 'workflows', 'workflow_runs', 'workflow_approvals']) t; END $$;
SELECT orchestration.set_secret(5, 'GITHUB_TOKEN', 'ghp-regress-value-1');
SELECT orchestration.set_secret(5, 'GITHUB_TOKEN', 'ghp-regress-value-2');
SELECT orchestration.set_secret(5, 'SLACK_WEBHOOK', 'https://hooks.example/regress-value-3');
SELECT name, used_by FROM orchestration.list_secrets(5);
SELECT orchestration.register_agent(5, '{"name": "notifier", "type": "SCRIPT", "image": "busybox", "secrets": ["SLACK_WEBHOOK"], "capabilities": [{"name": "notify"}]}') AS notifier_id \gset
SELECT name, used_by FROM orchestration.list_secrets(5);
SELECT orchestration.get_agent(:notifier_id)->'secrets' AS secrets_by_name;

-- Bad input: the messages name the secret, never the value.
SELECT orchestration.set_secret(5, 'bad-name', 'ghp-regress-value-4');
SELECT orchestration.set_secret(5, '', 'ghp-regress-value-4');
SELECT orchestration.set_secret(5, 'OK_NAME', NULL);
SELECT orchestration.set_secret(5, 'BIG', repeat('x', 70000));
SELECT orchestration.set_secret(-1, 'OK_NAME', 'ghp-regress-value-4');
SELECT orchestration.delete_secret(5, 'NO_SUCH_SECRET');

-- Deleting a secret an agent still uses warns.
SELECT orchestration.delete_secret(5, 'SLACK_WEBHOOK');
SELECT orchestration.delete_secret(5, 'GITHUB_TOKEN');
SELECT name FROM orchestration.list_secrets(5);
SELECT orchestration.delete_agent(:notifier_id);

-- The failed set_secret calls above reached the server log, but their statements, which
-- hold the value, did not. (The needle is built from parts so this query cannot match.)
SELECT pg_current_logfile() IS NOT NULL AS server_log_available;
SELECT position('invalid secret name "bad-name"' IN pg_read_file(pg_current_logfile())) > 0 AS error_was_logged,
       position('ghp-regress-' || 'value' IN pg_read_file(pg_current_logfile())) = 0 AS value_not_logged;
