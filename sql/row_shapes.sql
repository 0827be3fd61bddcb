-- The result columns of every function whose rows the C++ reads. The workers read them by
-- name (pg::RowReader), each through one decoder: claim_nodes, writable_nodes,
-- cancelled_nodes, running_containers, capability_contract and project_secrets in
-- src/scheduler/dispatch.cpp, relay_next_events and spans_to_send in
-- src/relay/relay_worker.cpp. A column renamed or removed here must be renamed or removed
-- there too (a missing one is an error that names it, at the first read).
SELECT p.proname AS function, string_agg(a.name, ', ' ORDER BY a.position) AS columns
FROM pg_proc p,
     unnest(p.proargnames, p.proargmodes) WITH ORDINALITY AS a(name, mode, position)
WHERE p.pronamespace = 'orchestration'::regnamespace AND a.mode = 't'
  AND p.proname IN ('claim_nodes', 'writable_nodes', 'cancelled_nodes', 'running_containers',
                    'capability_contract', 'project_secrets', 'relay_next_events', 'spans_to_send')
GROUP BY p.proname
ORDER BY p.proname;
