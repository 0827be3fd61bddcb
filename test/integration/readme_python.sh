#!/usr/bin/env bash
# The README's "From Python" program, run as it is written there (psycopg 3, Debian's
# python3-psycopg), against the test cluster: what it prints is what the README says.
source "$(dirname "$0")/lib.bash"
reset_database || { echo "Bail out! no scheduler connected to $PGDATABASE"; exit 1; }

program=$(mktemp --suffix=.py)
# The first ```python block after the "## From Python" heading.
awk '/^## From Python/ {section = 1} section && /^```python$/ {inside = 1; next}
     inside && /^```$/ {exit} inside {print}' "$ROOT/README.md" >"$program"
ok "$([ -s "$program" ]; echo $?)" "the README has a Python program ($(wc -l <"$program") lines)"

out=$(timeout 60 /usr/bin/python3 "$program" 2>&1)
status=$?
is "$status" "0" "it runs to the end"
[ "$status" -eq 0 ] || echo "$out" | sed 's/^/# /'
is "$(echo "$out" | sed -n 1p)" "WAITING_APPROVAL" "wait_for_run(id, 30) returns when the run waits for the approval"
is "$(echo "$out" | sed -n 2p)" "SUCCESS {'greeting': 'hello Ada'}" "approve_node, then wait_for_run(id, 30, 'finished') returns the output"
is "$(echo "$out" | sed -n 3p)" '42704 workflow "no-such-workflow" does not exist in project 1' "an error carries its SQLSTATE and message"
is "$(echo "$out" | sed -n '4,$p' | tr '\n' ' ')" \
   "orchestration.run.created orchestration.run.started orchestration.approval.requested orchestration.run.waiting_approval orchestration.approval.approved orchestration.run.resumed orchestration.node.succeeded orchestration.run.succeeded " \
   "the listener reads the second run's events after each notification, and approves when asked"
# Running it again changes no definition (put_agent and put_workflow are idempotent).
before=$(q "SELECT string_agg(updated_at::text, ',') FROM (SELECT updated_at FROM orchestration.agents UNION ALL SELECT updated_at FROM orchestration.workflows) t")
timeout 60 /usr/bin/python3 "$program" >/dev/null 2>&1
is "$(q "SELECT string_agg(updated_at::text, ',') FROM (SELECT updated_at FROM orchestration.agents UNION ALL SELECT updated_at FROM orchestration.workflows) t")" "$before" \
   "a second run of the program changes no agent or workflow"
rm -f "$program"
done_testing
