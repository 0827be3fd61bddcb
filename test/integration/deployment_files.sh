#!/usr/bin/env bash
# docker/Dockerfile, docker/agents/*/Dockerfile and docker/compose.yaml need a registry
# to build, which the test machines cannot reach. This checks what can be checked here:
# the compose file parses and names builds that exist, and every file a Dockerfile
# copies exists in its build context.
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
python3 - "$ROOT" <<'PY'
import os, re, sys, yaml
root = sys.argv[1]
n = 0
failed = 0
def check(ok, what):
    global n, failed
    n += 1
    print(("ok %d - %s" if ok else "not ok %d - %s") % (n, what))
    failed += 0 if ok else 1

compose_dir = os.path.join(root, "docker")
compose = yaml.safe_load(open(os.path.join(compose_dir, "compose.yaml")))
check(isinstance(compose.get("services"), dict) and {"postgres", "nats"} <= set(compose["services"]),
      "compose.yaml parses and has the postgres and nats services")
builds = []
for name, service in compose["services"].items():
    build = service.get("build")
    if build is None:
        check("image" in service, "service %s has an image" % name)
        continue
    context = build if isinstance(build, str) else build.get("context", ".")
    dockerfile = "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
    context = os.path.normpath(os.path.join(compose_dir, context))
    path = os.path.join(context, dockerfile)
    check(os.path.isfile(path), "service %s: %s exists" % (name, os.path.relpath(path, root)))
    builds.append((context, path))
for context, path in builds:
    for line in open(path):
        m = re.match(r"\s*COPY\s+(?!--from)(.*)", line)
        if not m:
            continue
        sources = m.group(1).split()[:-1]
        for source in sources:
            check(os.path.exists(os.path.join(context, source)),
                  "%s copies %s, which exists in its build context" % (os.path.relpath(path, root), source))
print("1..%d" % n)
sys.exit(1 if failed else 0)
PY
