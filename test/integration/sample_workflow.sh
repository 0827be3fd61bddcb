#!/usr/bin/env bash
# The README's first command, run by the suite: scripts/demo.sh builds the sample agent
# images, registers security-scanner and notifier, and runs the sample workflow (scan ->
# approval -> notify) end to end in sandboxed containers.
source "$(dirname "$0")/lib.bash"
export PGDATABASE=orchestration_demo
out=$("$ROOT/scripts/demo.sh" 2>&1)
ok $? "scripts/demo.sh runs to the end"
is "$(q "SELECT status FROM orchestration.workflow_runs WHERE id = 1")" "SUCCESS" "the sample workflow run succeeded, after its approval"
is "$(q "SELECT string_agg(f->>'rule', ',' ORDER BY f->>'rule') FROM orchestration.workflow_run_nodes n, jsonb_array_elements(n.output->'findings') f WHERE n.run_id = 1 AND n.node_key = 'scan'")" \
   "aws-access-key,password-assignment" "the security-scanner container found the leaked key and the password"
is "$(q "SELECT output->>'highest_severity' FROM orchestration.workflow_run_nodes WHERE run_id = 1 AND node_key = 'notify'")" "high" \
   "the notifier container formatted the message"
is "$(q "SELECT responded_by FROM orchestration.workflow_approvals WHERE run_id = 1")" "demo_reviewer" "a reviewer approved the notification"
is "$(q "SELECT string_agg(node_key || '=' || status, ',' ORDER BY level) FROM orchestration.workflow_run_nodes WHERE run_id = 2")" \
   "scan=SUCCESS,notify=SKIPPED" "clean text skips the notification"
echo "$out" | grep -q "payments-api: 2 finding(s), highest severity high"
ok $? "the demo prints the result"
is "$(docker ps -aq --filter label=orchestration.database=orchestration_demo | wc -l)" "0" "no container is left behind"
done_testing
