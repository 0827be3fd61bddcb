-- The data model. Every table that belongs to a project carries project_id, which
-- row-level security (20_tenancy.sql) filters on. Ids are bigint identities: easy to type
-- in psql. Writes go through the API functions only; roles get SELECT, and only on rows
-- of their projects.

CREATE TABLE orchestration.agents (
  id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  project_id       integer NOT NULL CHECK (project_id > 0),
  name             text NOT NULL,
  type             orchestration.agent_type NOT NULL,
  description      text,
  version          text NOT NULL,
  risk_level       orchestration.risk_level NOT NULL DEFAULT 'AUTO',
  image            text,
  command          text[] NOT NULL DEFAULT '{}',
  entry_path       text,
  env              jsonb NOT NULL DEFAULT '{}',
  secrets          text[] NOT NULL DEFAULT '{}',
  memory_mb        integer,
  cpus             numeric,
  timeout_seconds  integer NOT NULL,
  pids_limit       integer,
  allow_network    boolean NOT NULL DEFAULT false,
  rule_function    text,
  registered_by    name NOT NULL,
  registered_at    timestamptz NOT NULL DEFAULT now(),
  updated_at       timestamptz NOT NULL DEFAULT now(),
  UNIQUE (project_id, name),
  CONSTRAINT agents_rule_has_function CHECK ((type = 'RULE') = (rule_function IS NOT NULL)),
  CONSTRAINT agents_container_has_image CHECK (type = 'RULE' OR image IS NOT NULL),
  runs_as          name,
  CONSTRAINT agents_rule_runs_as CHECK ((type = 'RULE') = (runs_as IS NOT NULL)),
  spec_digest      text
);
CREATE INDEX ON orchestration.agents (project_id, type);
COMMENT ON TABLE orchestration.agents IS
  'The agent registry: what each agent is and how it runs (container image and sandbox limits, or a SQL function for RULE agents). Write with register_agent/update_agent/delete_agent';
COMMENT ON COLUMN orchestration.agents.spec_digest IS
  'md5 of the normalized spec last stored (register_agent, update_agent); put_agent changes nothing when it is the same';
COMMENT ON COLUMN orchestration.agents.secrets IS
  'Names of project secrets injected as environment variables into the container; the values stay in orchestration.secrets';
COMMENT ON COLUMN orchestration.agents.rule_function IS
  'RULE agents: the function (jsonb) returns jsonb that computes the output, as regprocedure text';
COMMENT ON COLUMN orchestration.agents.registered_by IS
  'The role that registered the agent';
COMMENT ON COLUMN orchestration.agents.runs_as IS
  'RULE agents: the role whose privileges the function runs with, the role that last set the function (register_agent or update_agent), which had to be allowed to execute it';

CREATE TABLE orchestration.agent_capabilities (
  id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  agent_id       bigint NOT NULL REFERENCES orchestration.agents ON DELETE CASCADE,
  project_id     integer NOT NULL,
  name           text NOT NULL,
  description    text,
  input_schema   jsonb NOT NULL DEFAULT 'true',
  output_schema  jsonb NOT NULL DEFAULT 'true',
  UNIQUE (agent_id, name),
  schema_refs    text[] NOT NULL DEFAULT '{}'
);
COMMENT ON TABLE orchestration.agent_capabilities IS
  'What an agent can do: each capability is an action a workflow node may call, with JSON Schemas for its input and output';
COMMENT ON COLUMN orchestration.agent_capabilities.schema_refs IS
  'The URIs of the project''s registered schemas that input_schema and output_schema use ($ref, directly or through each other); register_schema refuses to change those';

-- Shared definitions: JSON Schemas a project registers under a URI, for its capabilities'
-- schemas to $ref. Only a schema's own project can refer to it.
CREATE TABLE orchestration.registered_schemas (
  id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  project_id     integer NOT NULL CHECK (project_id > 0),
  uri            text NOT NULL,
  schema         jsonb NOT NULL,
  uses           text[] NOT NULL DEFAULT '{}',
  registered_by  name NOT NULL,
  registered_at  timestamptz NOT NULL DEFAULT now(),
  updated_at     timestamptz NOT NULL DEFAULT now(),
  UNIQUE (project_id, uri)
);
COMMENT ON TABLE orchestration.registered_schemas IS
  'JSON Schemas registered in a project under an absolute URI, which its capabilities'' schemas (and its other registered schemas) may $ref. Unchangeable while a capability or another registered schema uses one. Write with register_schema/delete_schema';
COMMENT ON COLUMN orchestration.registered_schemas.uses IS
  'The URIs of the project''s other registered schemas this one uses ($ref, directly or through each other)';

CREATE TABLE orchestration.workflows (
  id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  project_id   integer NOT NULL CHECK (project_id > 0),
  name         text NOT NULL,
  description  text,
  trigger      jsonb NOT NULL DEFAULT '{"type": "manual"}',
  status       orchestration.workflow_status NOT NULL DEFAULT 'ACTIVE',
  version      integer NOT NULL DEFAULT 1,
  created_by   name NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now(),
  updated_at   timestamptz NOT NULL DEFAULT now(),
  UNIQUE (project_id, name),
  updated_by   name NOT NULL DEFAULT current_user,
  spec_digest  text
);
CREATE INDEX ON orchestration.workflows (project_id, status);
COMMENT ON TABLE orchestration.workflows IS
  'Workflow definitions: a DAG of nodes (workflow_nodes) and how runs are triggered (manual, table, nats)';
COMMENT ON COLUMN orchestration.workflows.updated_by IS
  'The role that last created or changed the workflow: it vouches for its trigger, so runs a NATS message starts count as started by it (also for four-eyes approvals)';
COMMENT ON COLUMN orchestration.workflows.spec_digest IS
  'md5 of the normalized spec last stored (create_workflow, update_workflow); put_workflow changes nothing when it is the same. NULL after archive_workflow';
COMMENT ON COLUMN orchestration.workflows.version IS
  'Incremented by every update; a run records the version it started with';

CREATE TABLE orchestration.workflow_nodes (
  id                     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  workflow_id            bigint NOT NULL REFERENCES orchestration.workflows ON DELETE CASCADE,
  project_id             integer NOT NULL,
  node_key               text NOT NULL,
  agent_id               bigint NOT NULL,
  action                 text NOT NULL,
  inputs                 jsonb NOT NULL DEFAULT '{}',
  depends_on             text[] NOT NULL DEFAULT '{}',
  approval_required      boolean NOT NULL DEFAULT false,
  retries                integer NOT NULL DEFAULT 0 CHECK (retries >= 0),
  retry_backoff_seconds  numeric NOT NULL DEFAULT 1 CHECK (retry_backoff_seconds >= 0),
  timeout_seconds        integer CHECK (timeout_seconds > 0),
  condition              jsonb,
  run_if_skipped         boolean NOT NULL DEFAULT false,
  refs                   text[] NOT NULL DEFAULT '{}',
  dependents             text[] NOT NULL DEFAULT '{}',
  level                  integer NOT NULL DEFAULT 0,
  UNIQUE (workflow_id, node_key),
  -- A node calls a capability that exists; the registry refuses to remove one in use.
  FOREIGN KEY (agent_id, action) REFERENCES orchestration.agent_capabilities (agent_id, name)
    ON UPDATE CASCADE
);
CREATE INDEX ON orchestration.workflow_nodes (agent_id);
COMMENT ON TABLE orchestration.workflow_nodes IS
  'The nodes of a workflow: which agent capability each runs, its templated inputs and the nodes it depends on';
COMMENT ON COLUMN orchestration.workflow_nodes.node_key IS
  'The node''s id within its workflow, as used in depends_on and in {{ nodes.<id>.output }} templates';
COMMENT ON COLUMN orchestration.workflow_nodes.condition IS
  'The node''s "when" condition (a boolean or a condition string); false makes the node SKIPPED';
COMMENT ON COLUMN orchestration.workflow_nodes.run_if_skipped IS
  'Whether the node runs when a dependency was SKIPPED (by its condition); by default it is skipped too';
COMMENT ON COLUMN orchestration.workflow_nodes.refs IS
  'The nodes whose output the inputs and condition reference; each is upstream of this node';
COMMENT ON COLUMN orchestration.workflow_nodes.dependents IS
  'The nodes that depend on this one (the reverse of depends_on), so finishing a node touches only its dependents';
COMMENT ON COLUMN orchestration.workflow_nodes.level IS
  'Topological depth: 0 for nodes without dependencies, else one more than the deepest dependency, computed by store_workflow_nodes with a recursive CTE (see workflow_levels)';

CREATE TABLE orchestration.workflow_runs (
  id                bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  workflow_id       bigint NOT NULL REFERENCES orchestration.workflows,
  project_id        integer NOT NULL,
  workflow_version  integer NOT NULL,
  trigger           text NOT NULL,
  context           jsonb NOT NULL DEFAULT '{}',
  status            orchestration.run_status NOT NULL DEFAULT 'PENDING',
  traceparent       text,
  started_by        name NOT NULL,
  error             text,
  created_at        timestamptz NOT NULL DEFAULT now(),
  started_at        timestamptz,
  finished_at       timestamptz,
  started_login     name NOT NULL DEFAULT session_user,
  idempotency_key   text,
  priority          integer NOT NULL DEFAULT 0
);
CREATE INDEX ON orchestration.workflow_runs (workflow_id, status);
-- A start with a key the project has used returns that run instead of a second one.
CREATE UNIQUE INDEX workflow_runs_idempotency_key ON orchestration.workflow_runs (project_id, idempotency_key)
  WHERE idempotency_key IS NOT NULL;
CREATE INDEX ON orchestration.workflow_runs (created_at);
-- The scheduler looks only at live runs; this index stays small however much history
-- the table holds.
CREATE INDEX workflow_runs_live ON orchestration.workflow_runs (id)
  WHERE status IN ('PENDING', 'RUNNING', 'WAITING_APPROVAL');
COMMENT ON TABLE orchestration.workflow_runs IS
  'One row per run of a workflow: what started it, its context, its status and timings';
COMMENT ON COLUMN orchestration.workflow_runs.started_by IS
  'The role that started the run (the SET ROLE role, else the login; for a table trigger, the role that wrote the row)';
COMMENT ON COLUMN orchestration.workflow_runs.started_login IS
  'The person who started the run: the session''s login role (inside a RULE attempt, the agent''s role). With orchestration.approval_four_eyes, this login cannot answer the run''s approvals, whatever role it switches to';
COMMENT ON COLUMN orchestration.workflow_runs.priority IS
  'start_workflow''s priority: the nodes of runs with a higher one are claimed first (then by level and age); 0 by default';
COMMENT ON COLUMN orchestration.workflow_runs.idempotency_key IS
  'The caller''s key for this start (start_workflow''s idempotency_key), unique in the project while the run is kept: starting again with it returns this run';

CREATE TABLE orchestration.workflow_run_nodes (
  id                     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  run_id                 bigint NOT NULL,
  project_id             integer NOT NULL,
  node_key               text NOT NULL,
  agent_id               bigint,
  action                 text NOT NULL,
  inputs                 jsonb NOT NULL,
  depends_on             text[] NOT NULL,
  approval_required      boolean NOT NULL,
  retries                integer NOT NULL,
  retry_backoff_seconds  numeric NOT NULL,
  timeout_seconds        integer,
  condition              jsonb,
  run_if_skipped         boolean NOT NULL,
  refs                   text[] NOT NULL,
  dependents             text[] NOT NULL,
  level                  integer NOT NULL,
  pending_deps           integer NOT NULL,
  status                 orchestration.run_status NOT NULL DEFAULT 'PENDING',
  skip_reason            text,
  attempt                integer NOT NULL DEFAULT 0,
  resolved_input         jsonb,
  output                 jsonb,
  error                  text,
  container_name         text,
  attempt_traceparent    text,
  next_attempt_at        timestamptz,
  started_at             timestamptz,
  finished_at            timestamptz,
  UNIQUE (run_id, node_key),
  crashes                integer NOT NULL DEFAULT 0,
  priority               integer NOT NULL DEFAULT 0
);
-- The scheduler's queue: runnable nodes in dispatch order. Only nodes that can run now
-- are in it, so finding work costs the same however many finished runs the table holds.
CREATE INDEX workflow_run_nodes_runnable ON orchestration.workflow_run_nodes (priority DESC, level, id)
  WHERE status = 'PENDING' AND pending_deps = 0;
-- A run's unfinished nodes; with pending_deps, "has this run something runnable" is one
-- index probe however many nodes wait in the run.
CREATE INDEX workflow_run_nodes_live ON orchestration.workflow_run_nodes (run_id, status, pending_deps)
  WHERE status IN ('PENDING', 'RUNNING', 'WAITING_APPROVAL');
-- The running containers, counted against the concurrency limits at every claim: a small
-- index however many nodes wait.
CREATE INDEX workflow_run_nodes_running ON orchestration.workflow_run_nodes (project_id)
  WHERE status = 'RUNNING';
COMMENT ON TABLE orchestration.workflow_run_nodes IS
  'Per-run node state: a copy of each node''s definition taken when the run started (so later workflow edits do not change it), its status, attempt, resolved input, output and error';
COMMENT ON COLUMN orchestration.workflow_run_nodes.pending_deps IS
  'How many dependencies have not finished yet; the node is runnable when it is PENDING and this is 0';
COMMENT ON COLUMN orchestration.workflow_run_nodes.attempt_traceparent IS
  'The W3C traceparent of the running container''s attempt (its TRACEPARENT), kept so that its span keeps its id after a scheduler restart';
COMMENT ON COLUMN orchestration.workflow_run_nodes.crashes IS
  'How many times the worker process running this node (the scheduler or a RULE worker) died while working on it; at 2 the node is failed instead of being tried again (a crash-loop breaker)';
COMMENT ON COLUMN orchestration.workflow_run_nodes.priority IS
  'Its run''s priority, copied here so that the queue index (workflow_run_nodes_runnable) orders by it';
COMMENT ON COLUMN orchestration.workflow_run_nodes.skip_reason IS
  'Why a SKIPPED node did not run: its condition was false, a dependency was skipped, or the run failed';
-- run_id and agent_id are not foreign keys: PostgreSQL checks a row's keys again at every
-- update of a row the same transaction wrote before, a statement per key, and the nodes a
-- worker updates most are such rows (a chain's next step, a wide run's last node, updated
-- once per finished dependency). Triggers do what the keys' actions did: a deleted run's
-- nodes are deleted with it (runs_deleted), a deleted agent's id becomes NULL
-- (agents_deleted). Nothing keeps a concurrent writer from leaving an id whose row is gone
-- (a foreign key would lock it), so every reader joins agents with LEFT JOIN and reads
-- such an id as NULL: the agent deleted.
COMMENT ON COLUMN orchestration.workflow_run_nodes.run_id IS
  'The node''s run; deleted with it (the runs_deleted trigger)';
COMMENT ON COLUMN orchestration.workflow_run_nodes.agent_id IS
  'The agent the node calls; set to NULL when the agent is deleted (the agents_deleted trigger). An agent that is gone, either way, fails the node, if it has yet to run, saying so';

CREATE TABLE orchestration.agent_runs (
  id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  project_id       integer NOT NULL,
  agent_id         bigint,
  agent_name       text NOT NULL,
  run_id           bigint,
  run_node_id      bigint,
  attempt          integer NOT NULL,
  input_json       jsonb NOT NULL,
  output_json      jsonb,
  status           orchestration.run_status NOT NULL,
  error            text,
  exit_code        integer,
  log_tail         text,
  container_id     text,
  traceparent      text,
  scheduler_round  bigint,
  started_at       timestamptz NOT NULL DEFAULT now(),
  finished_at      timestamptz,
  duration_ms      integer,
  node_key         text
);
CREATE INDEX ON orchestration.agent_runs (agent_id, status);
CREATE INDEX ON orchestration.agent_runs (run_id);
CREATE INDEX ON orchestration.agent_runs (run_node_id);
COMMENT ON TABLE orchestration.agent_runs IS
  'History of every attempt of every agent: input, output, status, error, exit code, log tail and timings';
COMMENT ON COLUMN orchestration.agent_runs.node_key IS
  'The node of the run this attempt was of (its key in the workflow)';
-- run_node_id is not a foreign key either (since 0.2.0): its check was a statement per
-- attempt recorded, about a tenth of what record_attempts costs a node of a wide round
-- (README, Performance). The nodes_deleted trigger does what its ON DELETE CASCADE did.
-- Only the extension's own functions write attempts; one recorded while a DBA deletes its
-- node alone (not its run) outlives it, since nothing waits for the node now.
COMMENT ON COLUMN orchestration.agent_runs.agent_id IS
  'The agent of the attempt; set to NULL when the agent is deleted (the agents_deleted trigger; not a foreign key, for the reason workflow_run_nodes.agent_id is not one). agent_name keeps its name';
COMMENT ON COLUMN orchestration.agent_runs.run_id IS
  'The run of run_node_id (deleted with it, through the node)';
COMMENT ON COLUMN orchestration.agent_runs.run_node_id IS
  'The node this was an attempt of; deleted with it (the nodes_deleted trigger), and so with its run';
COMMENT ON COLUMN orchestration.agent_runs.traceparent IS
  'The attempt''s W3C traceparent: a span of its own in its run''s trace (a container got it as TRACEPARENT)';

CREATE TABLE orchestration.workflow_approvals (
  id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  project_id       integer NOT NULL,
  run_id           bigint NOT NULL REFERENCES orchestration.workflow_runs ON DELETE CASCADE,
  run_node_id      bigint NOT NULL REFERENCES orchestration.workflow_run_nodes ON DELETE CASCADE,
  node_key         text NOT NULL,
  status           orchestration.approval_status NOT NULL DEFAULT 'PENDING',
  requested_at     timestamptz NOT NULL DEFAULT now(),
  expires_at       timestamptz,
  responded_at     timestamptz,
  responded_by     name,
  notes            text,
  agent_pin        text
);
CREATE INDEX ON orchestration.workflow_approvals (run_id, status);
CREATE INDEX workflow_approvals_expiry ON orchestration.workflow_approvals (expires_at)
  WHERE status = 'PENDING';
CREATE UNIQUE INDEX workflow_approvals_one_pending ON orchestration.workflow_approvals (run_node_id)
  WHERE status = 'PENDING';
COMMENT ON TABLE orchestration.workflow_approvals IS
  'Approval requests for nodes whose agent or definition requires one: who answered, when, and with what notes';
COMMENT ON COLUMN orchestration.workflow_approvals.agent_pin IS
  'What the approver was asked to let run (orchestration.agent_pin at the request): an APPROVED approval counts only while the agent and its function are unchanged';

CREATE TABLE orchestration.events (
  id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  project_id    integer NOT NULL,
  type          text NOT NULL,
  subject       text NOT NULL,
  run_id        bigint,
  payload       jsonb NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now(),
  published_at  timestamptz
);
CREATE INDEX events_unpublished ON orchestration.events (id) WHERE published_at IS NULL;
-- No index on created_at: nothing reads events by it, and every event written and marked
-- published (a new row version: published_at is indexed) paid for one.
-- The relay prunes published events by age (orchestration.event_retention).
CREATE INDEX events_published ON orchestration.events (published_at) WHERE published_at IS NOT NULL;
COMMENT ON TABLE orchestration.events IS
  'Transactional outbox: one CloudEvents document per state change, written in the same transaction; the relay publishes them to NATS in id order and sets published_at';

-- Spans waiting for the relay to send them to orchestration.otlp_endpoint; written only
-- while it is set (triggers in 89_traces.sql).
CREATE TABLE orchestration.span_queue (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  span        jsonb NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE orchestration.span_queue IS
  'Spans (OTLP JSON) of finished runs and node attempts, kept until the relay has sent them to orchestration.otlp_endpoint, or at most orchestration.event_retention; filled only while otlp_endpoint is set';

CREATE TABLE orchestration.secrets (
  project_id  integer NOT NULL CHECK (project_id > 0),
  name        text NOT NULL,
  value       text NOT NULL,
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (project_id, name)
);
COMMENT ON TABLE orchestration.secrets IS
  'Secret values, injected into agent containers as environment variables. No role but the extension owner can read this table; set_secret, delete_secret and list_secrets are the only way in';
