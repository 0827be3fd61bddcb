#!/usr/bin/env bash
# The README's "From Python" programs, run as they are written there with the client package
# (python/) installed the way the README says, against the test cluster: what they print is
# what the README says.
source "$(dirname "$0")/lib.bash"
reset_database || { echo "Bail out! no scheduler connected to $PGDATABASE"; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# The README's install commands (the first ```sh block of the section), from a directory
# holding python/ as the repository does.
install=$(awk '/^## From Python/ {section = 1} section && /^```sh$/ {inside = 1; next}
               inside && /^```$/ {exit} inside {print}' "$ROOT/README.md")
out=$(cd "$work" && ln -s "$ROOT/python" python &&
      PATH="/usr/bin:$PATH" PIP_DISABLE_PIP_VERSION_CHECK=1 bash -euc "$install" 2>&1)
status=$?
is "$status" "0" "the README's install commands work offline"
[ "$status" -eq 0 ] || echo "$out" | sed 's/^/# /'
python=$work/.venv/bin/python

# python_block N: the Nth ```python block after the "## From Python" heading.
python_block() {
  awk -v want="$1" '/^## From Python/ {section = 1} /^## / && !/^## From Python/ {section = 0}
       section && /^```python$/ {n++; inside = (n == want); next}
       inside && /^```$/ {inside = 0} inside {print}' "$ROOT/README.md"
}
# run_block N NAME: writes the Nth block to $work/NAME.py and runs it, as written, in $work;
# its output in $out.
run_block() {
  python_block "$1" >"$work/$2.py"
  ok "$([ -s "$work/$2.py" ]; echo $?)" "the README has the $2 ($(wc -l <"$work/$2.py") lines)"
  out=$(cd "$work" && timeout 60 "$python" "$work/$2.py" 2>&1)
  local status=$?
  is "$status" "0" "the $2 runs to the end"
  [ "$status" -eq 0 ] || echo "$out" | sed 's/^/# /'
}
# The definitions' last changes, to see that running the program again changes none.
stamps() { q "SELECT string_agg(updated_at::text, ',') FROM (SELECT updated_at FROM orchestration.agents UNION ALL SELECT updated_at FROM orchestration.workflows) t"; }

run_block 1 program
is "$(echo "$out" | sed -n 1p)" "True" "a second start with the same idempotency key returns the same run"
is "$(echo "$out" | sed -n 2p)" "WAITING_APPROVAL" "client.wait(run_id, 30) returns when the run waits for the approval"
is "$(echo "$out" | sed -n 3p)" "SUCCESS {'greeting': 'hello Ada'}" "approve_node, then wait(..., until='finished') returns the output"
is "$(echo "$out" | sed -n 4p)" '42704 workflow "no-such-workflow" does not exist in project 1' "an error is an exception with its SQLSTATE and message"
is "$(echo "$out" | sed -n '5,$p' | tr '\n' ' ')" \
   "orchestration.run.created orchestration.run.started orchestration.approval.requested orchestration.run.waiting_approval orchestration.approval.approved orchestration.run.resumed orchestration.node.succeeded orchestration.run.succeeded " \
   "the event stream has the second run's events, in order, and the program approves when asked"
# Running it again changes no definition (put_agent and put_workflow are idempotent).
before=$(stamps)
(cd "$work" && timeout 60 "$python" "$work/program.py" >/dev/null 2>&1)
is "$?" "0" "the program runs again"
is "$(stamps)" "$before" "a second run of the program changes no agent or workflow"

run_block 2 async_program
is "$out" "SUCCESS {'greeting': 'hello Lin'}" "AsyncClient: start, wait, approve_node, wait until finished"
done_testing
