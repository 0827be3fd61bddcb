#!/usr/bin/env bash
# Versioned schema: installing an earlier version and running ALTER EXTENSION ... UPDATE
# must give exactly the catalog of a fresh install of the current version. Compares, for
# every object of the extension: tables and their columns (by name), types, indexes,
# constraints, functions (signature, result, body, settings, security, volatility),
# policies, grants, comments and triggers.
source "$(dirname "$0")/lib.bash"

current=$(sed -n "s/^default_version = '\(.*\)'/\1/p" "$ROOT/pg_orchestration.control")
catalog_sql=$(cat <<'SQL'
WITH ext AS (SELECT oid FROM pg_extension WHERE extname = 'pg_orchestration'),
ns AS (SELECT oid FROM pg_namespace WHERE nspname = 'orchestration')
SELECT 'relation ' || c.relname || ' ' || c.relkind::text || ' rls=' || c.relrowsecurity
       || ' acl=' || coalesce(c.relacl::text, '-') || ' comment=' || coalesce(obj_description(c.oid, 'pg_class'), '-')
FROM pg_class c WHERE c.relnamespace = (SELECT oid FROM ns)
UNION ALL
SELECT 'column ' || c.relname || '.' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
       || ' notnull=' || a.attnotnull || ' identity=' || a.attidentity::text
       || ' default=' || coalesce(pg_get_expr(d.adbin, d.adrelid), '-')
       || ' comment=' || coalesce(col_description(c.oid, a.attnum), '-')
FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
WHERE c.relnamespace = (SELECT oid FROM ns)
UNION ALL
SELECT 'index ' || pg_get_indexdef(i.indexrelid)
FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid WHERE c.relnamespace = (SELECT oid FROM ns)
UNION ALL
SELECT 'constraint ' || conrelid::regclass || ' ' || conname || ' ' || pg_get_constraintdef(oid)
FROM pg_constraint WHERE connamespace = (SELECT oid FROM ns)
UNION ALL
SELECT 'function ' || p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ') '
       || pg_get_function_result(p.oid) || ' lang=' || l.lanname || ' secdef=' || p.prosecdef
       || ' volatile=' || p.provolatile::text || ' strict=' || p.proisstrict || ' parallel=' || p.proparallel::text
       || ' config=' || coalesce(p.proconfig::text, '-') || ' acl=' || coalesce(p.proacl::text, '-')
       || ' body=' || md5(p.prosrc) || ' comment=' || coalesce(obj_description(p.oid, 'pg_proc'), '-')
FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang WHERE p.pronamespace = (SELECT oid FROM ns)
UNION ALL
SELECT 'type ' || t.typname || ' ' || t.typtype::text || ' '
       || coalesce((SELECT string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder) FROM pg_enum e WHERE e.enumtypid = t.oid), '')
       || ' comment=' || coalesce(obj_description(t.oid, 'pg_type'), '-')
FROM pg_type t WHERE t.typnamespace = (SELECT oid FROM ns) AND t.typtype IN ('e', 'd', 'b', 'r')
UNION ALL
SELECT 'policy ' || polrelid::regclass || ' ' || polname || ' ' || polcmd::text || ' ' || polpermissive
       || ' roles=' || polroles::text || ' using=' || coalesce(pg_get_expr(polqual, polrelid), '-')
       || ' check=' || coalesce(pg_get_expr(polwithcheck, polrelid), '-')
FROM pg_policy WHERE polrelid IN (SELECT oid FROM pg_class WHERE relnamespace = (SELECT oid FROM ns))
UNION ALL
SELECT 'trigger ' || pg_get_triggerdef(t.oid)
FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
WHERE c.relnamespace = (SELECT oid FROM ns) AND NOT t.tgisinternal
UNION ALL
SELECT 'schema acl=' || coalesce(nspacl::text, '-') FROM pg_namespace WHERE nspname = 'orchestration'
UNION ALL
SELECT 'member ' || regexp_replace(pg_describe_object(d.classid, d.objid, d.objsubid), '[0-9]+', 'N', 'g')
FROM pg_depend d WHERE d.refclassid = 'pg_extension'::regclass AND d.refobjid = (SELECT oid FROM ext)
  AND d.deptype = 'e'
ORDER BY 1
SQL
)

catalog() { psql -X -q -At -v ON_ERROR_STOP=1 -d "$1" -c "$catalog_sql"; }

for db in orchestration_upgrade_old orchestration_upgrade_new; do
  psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1
  psql -X -q -v ON_ERROR_STOP=1 -d postgres -c "CREATE DATABASE $db" >/dev/null
done

versions=$(ls "$ROOT"/extension/versions/pg_orchestration--*.sql | sed -n 's/.*pg_orchestration--\([0-9.]*\)\.sql$/\1/p' | sort -V)
ok $? "earlier versions are kept: $(echo $versions)"
for old in $versions; do
  psql -X -q -d postgres -c "DROP DATABASE IF EXISTS orchestration_upgrade_old" >/dev/null 2>&1
  psql -X -q -v ON_ERROR_STOP=1 -d postgres -c "CREATE DATABASE orchestration_upgrade_old" >/dev/null
  out=$(psql -X -q -v ON_ERROR_STOP=1 -d orchestration_upgrade_old \
          -c "CREATE EXTENSION pg_orchestration VERSION '$old'" \
          -c "ALTER EXTENSION pg_orchestration UPDATE" \
          -c "SELECT extversion FROM pg_extension WHERE extname = 'pg_orchestration'" -At 2>&1)
  is "$(echo "$out" | tail -1)" "$current" "$old installs and updates to $current"
done
psql -X -q -v ON_ERROR_STOP=1 -d orchestration_upgrade_new -c "CREATE EXTENSION pg_orchestration" >/dev/null
ok $? "$current installs fresh"

catalog orchestration_upgrade_old > /tmp/orch_catalog_upgraded.txt
catalog orchestration_upgrade_new > /tmp/orch_catalog_fresh.txt
difference=$(diff /tmp/orch_catalog_upgraded.txt /tmp/orch_catalog_fresh.txt)
[ -s /tmp/orch_catalog_fresh.txt ] && [ "$(wc -l < /tmp/orch_catalog_fresh.txt)" -gt 100 ]
ok $? "the catalog of a fresh install is read ($(wc -l < /tmp/orch_catalog_fresh.txt) lines)"
is "$difference" "" "the upgraded catalog equals a fresh install's ($(wc -l < /tmp/orch_catalog_fresh.txt) catalog lines compared)"
# The comparison itself can fail: a function changed after the upgrade is found.
psql -X -q -d orchestration_upgrade_old -c "COMMENT ON FUNCTION orchestration.calling_role() IS 'changed'" >/dev/null
catalog orchestration_upgrade_old > /tmp/orch_catalog_upgraded.txt
! diff -q /tmp/orch_catalog_upgraded.txt /tmp/orch_catalog_fresh.txt >/dev/null
ok $? "a changed comment is a difference the comparison sees"

# Between installing a new library and ALTER EXTENSION ... UPDATE, a database keeps the
# objects of the version it had. The library's functions refuse to run against them with
# an error that says what to do, and write nothing (0.1.0's create_workflow, run with this
# library's C code, fails on a column the code no longer fills).
oldest=$(echo "$versions" | head -1)
old_db() { psql -X -q -At -d orchestration_upgrade_old "$@" 2>&1; }
psql -X -q -d postgres -c "DROP DATABASE IF EXISTS orchestration_upgrade_old" >/dev/null 2>&1
psql -X -q -v ON_ERROR_STOP=1 -d postgres -c "CREATE DATABASE orchestration_upgrade_old" >/dev/null
old_db -c "CREATE EXTENSION pg_orchestration VERSION '$oldest'" >/dev/null
register_agent="SELECT orchestration.register_agent(1, '{\"name\": \"s\", \"type\": \"SCRIPT\", \"image\": \"x\", \"capabilities\": [{\"name\": \"c\"}]}')"
refused=$(old_db -v VERBOSITY=verbose -c "$register_agent")
is "$(echo "$refused" | grep -o 'ERROR:  55000: pg_orchestration in this database is version [0-9.]*, but the library loaded is version [0-9.]*')" \
   "ERROR:  55000: pg_orchestration in this database is version $oldest, but the library loaded is version $current" \
   "before the update, a $oldest function that reaches the library's code is refused with both versions"
echo "$refused" | grep -q 'HINT:  Run ALTER EXTENSION pg_orchestration UPDATE in this database'
ok $? "and the hint says what to run"
is "$(old_db -c "SELECT count(*) FROM orchestration.agents")" "0" "it wrote nothing"
# A check passed in a savepoint whose update is then rolled back does not count after it.
rolled_back=$(old_db -v VERBOSITY=verbose -c "BEGIN; SAVEPOINT s; ALTER EXTENSION pg_orchestration UPDATE;
  SELECT orchestration.calling_role() IS NOT NULL; ROLLBACK TO s; $register_agent; COMMIT")
echo "$rolled_back" | grep -q "ERROR:  55000: pg_orchestration in this database is version $oldest"
ok $? "an update rolled back to a savepoint leaves the calls after it refused"
is "$(old_db -c "SELECT count(*) FROM orchestration.agents")" "0" "and they wrote nothing"
recreated=$(old_db -v VERBOSITY=verbose -c "BEGIN; ALTER EXTENSION pg_orchestration UPDATE;
  SELECT orchestration.calling_role() IS NOT NULL; DROP EXTENSION pg_orchestration;
  CREATE EXTENSION pg_orchestration VERSION '$oldest'; $register_agent; ROLLBACK")
echo "$recreated" | grep -q "ERROR:  55000: pg_orchestration in this database is version $oldest"
ok $? "so does an extension dropped and created again at $oldest in the transaction that passed the check"
old_db -c "ALTER EXTENSION pg_orchestration UPDATE" >/dev/null
is "$(old_db -c "$register_agent")" "1" "after the update the same call works"

# The workers of a database left at an earlier version wait for its update, saying so once
# each, instead of failing every poll on functions that are not there; after the update
# they go on by themselves. (orchestration_test is served by workers; the other tests
# start from reset_database, which installs the current version.)
log="$DATA/log/postgresql.log"
log_from=$(($(wc -l < "$log") + 1))
q "DROP EXTENSION IF EXISTS pg_orchestration CASCADE" >/dev/null 2>&1
q "CREATE EXTENSION pg_orchestration VERSION '$oldest'" >/dev/null
workers=$(q "SELECT string_agg(pid::text, ' ' ORDER BY pid) FROM pg_stat_activity
             WHERE datname = current_database() AND backend_type LIKE 'pg_orchestration %'
               AND backend_type <> 'pg_orchestration metrics'")
# The scheduler and the RULE workers look every poll interval; the relay only when woken
# (or to prune, once a minute): a reload wakes it for a turn, as any latch does.
q "SELECT pg_reload_conf()" >/dev/null
waiting_lines() { tail -n +"$log_from" "$log" | grep -c "\[$1\] .*pg_orchestration in this database is version $oldest, but the library loaded is version $current; waiting for ALTER EXTENSION pg_orchestration UPDATE"; }
deadline=$((SECONDS + 15))
for pid in $workers; do
  while [ "$(waiting_lines "$pid")" = 0 ] && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
done
sleep 3  # three poll intervals more: time for any worker to repeat itself or fail
said=""
for pid in $workers; do said="$said $(waiting_lines "$pid")"; done
is "$said" "$(for pid in $workers; do printf ' 1'; done)" \
   "each worker of the database ($workers) said once that it waits for the update"
# What each logged after it said so. (A pass that was under way when DROP EXTENSION began
# waits for the tables it drops and fails when it commits, "relation ... does not exist",
# before the old version is there to wait for: that is the drop, not the waiting.)
others=0
for pid in $workers; do
  said_at=$(tail -n +"$log_from" "$log" | grep -n "\[$pid\] .*waiting for ALTER EXTENSION" | head -1 | cut -d: -f1)
  after=$(tail -n +"$log_from" "$log" | tail -n +"${said_at:-1}" | grep "\[$pid\] " | grep -v 'waiting for ALTER EXTENSION' | grep -c 'pg_orchestration')
  others=$((others + after))
done
is "$others" "0" "and logged nothing else while they waited (no function missing, no failed pass)"
q "ALTER EXTENSION pg_orchestration UPDATE" >/dev/null
q "CREATE FUNCTION public.after_update(input jsonb) RETURNS jsonb LANGUAGE sql AS \$\$ SELECT '{\"ok\": true}'::jsonb \$\$"
rule_workflow after_update
run=$(q "SELECT orchestration.start_workflow(1, 'after_update')")
is "$(q "SELECT orchestration.wait_for_run($run, '30 seconds')->>'status'")" "SUCCESS" \
   "after the update the same workers run a workflow, without a restart"
going_on() { tail -n +"$log_from" "$log" | grep -c "pg_orchestration in this database is version $current now; going on"; }
deadline=$((SECONDS + 10))
while [ "$(going_on)" -lt "$(echo "$workers" | wc -w)" ] && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
is "$(going_on)" "$(echo "$workers" | wc -w)" "and each said, once, that it goes on (at its next poll)"
q "DROP FUNCTION public.after_update(jsonb) CASCADE" >/dev/null 2>&1
reset_database

for db in orchestration_upgrade_old orchestration_upgrade_new; do
  psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $db" >/dev/null 2>&1
done
done_testing
