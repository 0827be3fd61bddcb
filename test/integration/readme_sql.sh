#!/usr/bin/env bash
# Every ```sql block of the README, in order, as one psql session on a fresh extension,
# against the demo's sample agent images: an example that drifts from the code fails here.
#
# Checked per block: each documented result (a comment "-- → value", the text after the
# arrow up to two spaces) appears among the block's results, in order (psql -At: one line
# per row, columns joined by |); each documented error ("-- ERROR:  message", and a
# "-- HINT:  ..." right after it) is what psql printed, in order; and nothing else failed.
source "$(dirname "$0")/lib.bash"
reset_database || { echo "Bail out! no scheduler connected to $PGDATABASE"; exit 1; }

# The examples create the role "backend" (roles outlive the database) and run containers
# of the sample images.
q "DROP OWNED BY backend CASCADE" >/dev/null 2>&1
q "DROP ROLE IF EXISTS backend" >/dev/null 2>&1
for image in security-scanner notifier; do
  docker image inspect "orchestration/$image:1.0" >/dev/null 2>&1 || { "$ROOT/docker/agents/build-images.sh" >/dev/null; break; }
done

work=$(mktemp -d)
python3 - "$ROOT/README.md" "$work" <<'PY'
import json, re, sys
readme, work = sys.argv[1], sys.argv[2]
blocks, current, line_no = [], None, 0
for number, line in enumerate(open(readme), 1):
    if current is None and line.rstrip() == "```sql":
        current, line_no = [], number + 1
    elif current is not None and line.rstrip() == "```":
        blocks.append((line_no, current)); current = None
    elif current is not None:
        current.append(line.rstrip("\n"))
with open(f"{work}/all.sql", "w") as script:
    script.write("\\set SHOW_CONTEXT never\n\\set VERBOSITY default\n")
    expected = []
    for index, (start, lines) in enumerate(blocks):
        script.write(f"\\echo '@@block {index}@@'\n" + "\n".join(lines) + "\n")
        results, errors = [], []
        for line in lines:
            m = re.search(r"--\s*→\s*(.*)$", line)
            if m:
                results.append(re.split(r"\s{2,}", m.group(1).strip())[0])
            m = re.match(r"^--\s*(ERROR|HINT):  (.*)$", line)
            if m:
                errors.append(f"{m.group(1)}:  {m.group(2)}")
        expected.append({"line": start, "results": results, "errors": errors})
    json.dump(expected, open(f"{work}/expected.json", "w"))
PY
( cd "$work" && psql -X -q -At -v ON_ERROR_STOP=0 -f all.sql >output.txt 2>&1 )

python3 - "$work" <<'PY' >"$work/report.txt"
import json, re, sys
work = sys.argv[1]
expected = json.load(open(f"{work}/expected.json"))
outputs, current = {}, None
for line in open(f"{work}/output.txt"):
    line = line.rstrip("\n")
    m = re.match(r"^@@block (\d+)@@$", line)
    if m:
        current = int(m.group(1)); outputs[current] = []; continue
    if current is not None:
        outputs[current].append(line)
for index, want in enumerate(expected):
    got = outputs.get(index, [])
    errors = [re.sub(r"^psql:[^:]*:\d+: ", "", l) for l in got if re.match(r"^(psql:[^:]*:\d+: )?(ERROR|HINT):  ", l)]
    # Documented hints are checked; undocumented ones are not errors.
    errors = [e for e in errors if e.startswith("ERROR") or any(w.startswith("HINT") for w in want["errors"])]
    results = [l for l in got if not re.match(r"^(psql:|ERROR:|HINT:|DETAIL:|NOTICE:|WARNING:)", l)]
    position, missing = 0, []
    for value in want["results"]:
        while position < len(results) and results[position] != value:
            position += 1
        if position == len(results):
            missing.append(value); position = 0
        else:
            position += 1
    ok = errors == want["errors"] and not missing
    detail = "" if ok else json.dumps({"documented errors": want["errors"], "errors": errors,
                                       "documented results not found": missing, "output": got[:20]}, indent=1)
    # One line per block, tab-separated: ok, README line, results and errors checked, detail.
    print("\t".join([str(ok), str(want["line"]), str(len(want["results"])), str(len(want["errors"])),
                     detail.replace("\n", "\\n")]))
PY

blocks=$(wc -l <"$work/report.txt")
ok "$([ "$blocks" -ge 30 ]; echo $?)" "the README's $blocks sql blocks ran"
checked_results=0; checked_errors=0
while IFS=$'\t' read -r good line results errors detail; do
  checked_results=$((checked_results + results)); checked_errors=$((checked_errors + errors))
  is "$good" "True" "README.md line $line: runs as documented ($results results, $errors errors checked)"
  [ "$good" = "True" ] || printf '%b\n' "$detail" | sed 's/^/# /'
done <"$work/report.txt"
echo "# $checked_results documented results and $checked_errors documented errors checked"

# What the examples changed outside the database goes back.
q "ALTER SYSTEM RESET orchestration.otlp_endpoint" >/dev/null
q "SELECT pg_reload_conf()" >/dev/null
rm -rf "$work"
done_testing
