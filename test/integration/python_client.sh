#!/usr/bin/env bash
# The Python client (python/): installed offline into a fresh venv the way the README says,
# type-checked with mypy --strict, and its pytest suite run against the test cluster (one
# TAP line per test).
source "$(dirname "$0")/lib.bash"
reset_database || { echo "Bail out! no scheduler connected to $PGDATABASE"; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
venv=$work/venv

# Debian's python3 (not a pyenv shim): its python3-psycopg and python3-pytest come in
# through --system-site-packages; PIP_NO_INDEX=1 proves nothing is downloaded.
/usr/bin/python3 -m venv --system-site-packages "$venv"
out=$(cd "$work" && PIP_NO_INDEX=1 PIP_DISABLE_PIP_VERSION_CHECK=1 "$venv/bin/pip" install "$ROOT/python" 2>&1)
status=$?
is "$status" "0" "pip install ./python works offline (PIP_NO_INDEX=1) in a fresh venv"
[ "$status" -eq 0 ] || echo "$out" | sed 's/^/# /'

where=$(cd "$work" && "$venv/bin/python" -c 'import pg_orchestration, os; print(os.path.dirname(pg_orchestration.__file__))' 2>&1)
case "$where" in "$venv"/*) r=0 ;; *) r=1; echo "# imported from: $where" ;; esac
ok "$r" "the venv imports pg_orchestration from its own site-packages"
ok "$([ -f "$where/py.typed" ]; echo $?)" "the installed package has its py.typed marker"

out=$(cd "$ROOT/python" && mypy --strict --cache-dir "$work/mypy" pg_orchestration 2>&1)
status=$?
is "$status" "0" "mypy --strict: $(echo "$out" | tail -1)"
[ "$status" -eq 0 ] || echo "$out" | sed 's/^/# /'

# A program typed against the installed package (its py.typed) passes mypy --strict too.
cat >"$work/typed_user.py" <<'PY'
from pg_orchestration import Client, Run, RunFailed

def finish(client: Client, run_id: int) -> str:
    try:
        run: Run = client.wait(run_id, 30, until="finished")
    except RunFailed as failure:
        return f"{failure.node_key}: {failure.node_error}"
    return run.status
PY
out=$(cd "$work" && mypy --strict --cache-dir "$work/mypy" --python-executable "$venv/bin/python" typed_user.py 2>&1)
is "$?" "0" "a program using the installed package passes mypy --strict"
[ "$(echo "$out" | tail -1 | cut -c1-7)" = "Success" ] || echo "$out" | sed 's/^/# /'

# pytest from outside python/, so the tests import the installed package, not the sources.
out=$(cd "$work" && PYTHONDONTWRITEBYTECODE=1 timeout 600 "$venv/bin/python" -m pytest -p no:cacheprovider \
        -q -rA --tb=short "$ROOT/python/tests" 2>&1)
status=$?
results=$(echo "$out" | grep -E '^(PASSED|FAILED|ERROR|SKIPPED|XFAIL|XPASS) ')
while read -r outcome rest; do
  [ -n "$outcome" ] || continue
  case "$outcome" in
    PASSED|XFAIL) ok 0 "pytest ${rest#*tests/}" ;;
    SKIPPED) ok 0 "pytest # SKIP ${rest}" ;;
    *) ok 1 "pytest ${rest#*tests/} ($outcome)" ;;
  esac
done <<<"$results"
is "$status" "0" "pytest: $(echo "$out" | tail -1)"
[ "$status" -eq 0 ] || echo "$out" | grep -vE '^(PASSED|SKIPPED) ' | tail -60 | sed 's/^/# /'
done_testing
