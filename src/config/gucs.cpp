#include "config/gucs.hpp"

#include <climits>
#include <cstdio>
#include <stdexcept>

#include "core/http/metrics_server.hpp"

extern "C" {
#include "postgres.h"

#include "utils/guc.h"
}

namespace orch::config {

char* database_names = nullptr;
int poll_interval_ms = 1000;
int max_concurrent_nodes = 16;
int max_concurrent_nodes_per_project = 0;
int approval_timeout_seconds = 86400;
bool approval_four_eyes = false;
bool notify_details = false;
int max_nodes_per_transaction = 200;
int rule_workers = 3;
char* docker_host = nullptr;
char* docker_tls_ca = nullptr;
char* docker_tls_cert = nullptr;
char* docker_tls_key = nullptr;
char* allowed_images = nullptr;
int max_output_bytes = 1024 * 1024;
int max_log_bytes = 64 * 1024;
int container_max_memory_mb = 4096;
double container_max_cpus = 4;
int container_max_pids = 1024;
bool container_allow_network = true;
char* nats_url = nullptr;
char* nats_credentials_file = nullptr;
char* nats_tls_ca = nullptr;
char* nats_tls_cert = nullptr;
char* nats_tls_key = nullptr;
bool nats_jetstream = true;
char* nats_stream = nullptr;
char* nats_queue_group = nullptr;
int event_retention_seconds = 7 * 86400;
int relay_batch_size = 256;
char* otlp_endpoint = nullptr;
char* metrics_listen = nullptr;

namespace {

// orchestration.metrics_listen must parse, or the setting is refused where it is made.
bool check_metrics_listen(char** value, void**, GucSource) {
  if (*value == nullptr || **value == '\0') return true;
  char problem[256] = "";
  try {
    (void)http::parse_listen_address(*value);
  } catch (const std::exception& e) {
    snprintf(problem, sizeof problem, "%s", e.what());
  }
  // Outside the catch: GUC_check_errdetail may palloc, and so longjmp.
  if (problem[0] == '\0') return true;
  GUC_check_errdetail("%s", problem);
  return false;
}

}  // namespace

void define_gucs() {
  DefineCustomStringVariable(
      "orchestration.database_name",
      "Databases whose workflows pg_orchestration schedules (comma-separated).",
      "One scheduler background worker runs per database listed, each in a database that "
      "has the extension. Changing it needs a server restart.",
      &database_names, "postgres", PGC_POSTMASTER, 0, nullptr, nullptr, nullptr);
  DefineCustomIntVariable(
      "orchestration.poll_interval_ms",
      "How often an idle scheduler looks for work it was not woken for.",
      "The scheduler is woken at once when work is created; polling is the safety net.",
      &poll_interval_ms, 1000, 10, 3600 * 1000, PGC_SIGHUP, GUC_UNIT_MS, nullptr, nullptr,
      nullptr);
  DefineCustomIntVariable(
      "orchestration.max_concurrent_nodes", "How many nodes may run at once, in all projects.",
      "Counts container nodes; RULE nodes are bounded by orchestration.rule_workers. 0 means "
      "no limit.",
      &max_concurrent_nodes, 16, 0, 10000, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
  DefineCustomIntVariable(
      "orchestration.max_concurrent_nodes_per_project",
      "How many nodes of one project may run at once.", "0 means no per-project limit.",
      &max_concurrent_nodes_per_project, 0, 0, 10000, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
  DefineCustomIntVariable(
      "orchestration.approval_timeout",
      "How long an approval may wait for an answer before it is rejected as expired.",
      "0 means approvals never expire.", &approval_timeout_seconds, 86400, 0, INT_MAX / 1000,
      PGC_SIGHUP, GUC_UNIT_S, nullptr, nullptr, nullptr);
  DefineCustomBoolVariable(
      "orchestration.approval_four_eyes",
      "Whether the role that started a run is barred from answering its approvals.", nullptr,
      &approval_four_eyes, false, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
  DefineCustomBoolVariable(
      "orchestration.notify_details",
      "Whether NOTIFY orchestration_events carries each event's id, type and run id.",
      "Any login role can LISTEN, so by default the payload is empty: it tells only that "
      "events were written. Turn it on only where every role that can log in may know that "
      "much of every project.",
      &notify_details, false, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
  DefineCustomIntVariable(
      "orchestration.max_nodes_per_transaction",
      "How many nodes the scheduler or a RULE worker moves on before it commits.",
      "Larger batches move more nodes per second; smaller ones make each result visible "
      "sooner and hold row locks for less time. The scheduler also commits every 50 ms.",
      &max_nodes_per_transaction, 200, 1, 100000, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
  DefineCustomIntVariable(
      "orchestration.rule_workers", "How many processes per database run RULE nodes.",
      "RULE functions run in these background workers, not in the scheduler, so that one "
      "that outlives its timeout can be stopped alone (the scheduler stops its process). "
      "The nodes of one project occupy at most rule_workers - 1 of them (at least one). 0 "
      "runs RULE nodes inside the scheduler, where nothing can stop a function that ignores "
      "its timeout. Each needs a slot of max_worker_processes. Changing it needs a server "
      "restart.",
      &rule_workers, 3, 0, kMaxRuleWorkers, PGC_POSTMASTER, 0, nullptr, nullptr, nullptr);
  DefineCustomStringVariable(
      "orchestration.docker_host", "The Docker engine that runs container agents.",
      "unix:///PATH (the local socket) or tcp://HOST:PORT (with TLS when the certificate "
      "settings are given).",
      &docker_host, "unix:///var/run/docker.sock", PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
  DefineCustomStringVariable("orchestration.docker_tls_ca", "CA certificate file for a tcp:// Docker engine.",
                             nullptr, &docker_tls_ca, "", PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
  DefineCustomStringVariable("orchestration.docker_tls_cert", "Client certificate file for a tcp:// Docker engine.",
                             nullptr, &docker_tls_cert, "", PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
  DefineCustomStringVariable("orchestration.docker_tls_key", "Client key file for a tcp:// Docker engine.",
                             nullptr, &docker_tls_key, "", PGC_SIGHUP, GUC_SUPERUSER_ONLY, nullptr, nullptr, nullptr);
  DefineCustomStringVariable(
      "orchestration.allowed_images", "The images container agents may run (comma-separated patterns).",
      "'*' matches any run of characters, '?' one. Empty: no image may run.", &allowed_images, "",
      PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
  DefineCustomIntVariable("orchestration.max_output_bytes", "The largest output (stdout) a container agent may write.",
                          "A larger output fails the attempt.", &max_output_bytes, 1024 * 1024, 1, INT_MAX,
                          PGC_SIGHUP, GUC_UNIT_BYTE, nullptr, nullptr, nullptr);
  DefineCustomIntVariable("orchestration.max_log_bytes", "How much of a container agent's stderr is kept (its tail).",
                          nullptr, &max_log_bytes, 64 * 1024, 0, INT_MAX, PGC_SIGHUP, GUC_UNIT_BYTE, nullptr,
                          nullptr, nullptr);
  DefineCustomIntVariable("orchestration.container_max_memory_mb", "The most memory any container agent gets.",
                          "An agent's limits.memory_mb above it is lowered to it.", &container_max_memory_mb, 4096,
                          6, 1024 * 1024, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
  DefineCustomRealVariable("orchestration.container_max_cpus", "The most CPUs any container agent gets.", nullptr,
                           &container_max_cpus, 4, 0.01, 1024, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
  DefineCustomIntVariable("orchestration.container_max_pids", "The most processes any container agent may have.",
                          nullptr, &container_max_pids, 1024, 1, 1 << 22, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
  DefineCustomBoolVariable("orchestration.container_allow_network",
                           "Whether agents whose spec sets allow_network get a network.",
                           "Off: no container agent gets a network, whatever its spec says.",
                           &container_allow_network, true, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
  // The NATS relay. Settings are read again on reload; a change reconnects.
  DefineCustomStringVariable(
      "orchestration.nats_url", "The NATS server(s) the relay publishes events to and takes triggers from.",
      "nats://HOST:PORT, comma-separated for a cluster; user:password@ may be part of it (so only "
      "superusers can read this setting). Empty: the relay is off and events stay in the outbox.",
      &nats_url, "", PGC_SIGHUP, GUC_SUPERUSER_ONLY, nullptr, nullptr, nullptr);
  DefineCustomStringVariable("orchestration.nats_credentials_file",
                             "A NATS credentials (.creds) file: user JWT and nkey seed.", nullptr,
                             &nats_credentials_file, "", PGC_SIGHUP, GUC_SUPERUSER_ONLY, nullptr, nullptr, nullptr);
  DefineCustomStringVariable("orchestration.nats_tls_ca", "CA certificate file for a TLS connection to NATS.",
                             "Set it (or the client certificate) to require TLS.", &nats_tls_ca, "", PGC_SIGHUP, 0,
                             nullptr, nullptr, nullptr);
  DefineCustomStringVariable("orchestration.nats_tls_cert", "Client certificate file for NATS.", nullptr,
                             &nats_tls_cert, "", PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
  DefineCustomStringVariable("orchestration.nats_tls_key", "Client key file for NATS.", nullptr, &nats_tls_key, "",
                             PGC_SIGHUP, GUC_SUPERUSER_ONLY, nullptr, nullptr, nullptr);
  DefineCustomBoolVariable(
      "orchestration.nats_jetstream", "Whether the relay publishes through JetStream.",
      "On: each event is marked published only after the stream stored it, and a re-send after a crash "
      "is dropped by the stream's duplicate window (exactly once in the stream). Off: core NATS publish "
      "and flush; subscribers that are not connected miss events, and a crash between the flush and "
      "the commit sends an event twice.",
      &nats_jetstream, true, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
  DefineCustomStringVariable("orchestration.nats_stream",
                             "The JetStream stream the relay creates (or checks) for orchestration.>.", nullptr,
                             &nats_stream, "ORCHESTRATION", PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
  DefineCustomStringVariable(
      "orchestration.nats_queue_group", "The queue group of the relay's trigger subscriptions.",
      "Relays in one group share the messages: each message starts its workflows once among them.",
      &nats_queue_group, "pg_orchestration", PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
  DefineCustomIntVariable(
      "orchestration.event_retention", "How long published events stay in the outbox.",
      "Published events older than this are deleted by the relay; unpublished ones never are. 0 "
      "deletes published events at once.",
      &event_retention_seconds, 7 * 86400, 0, INT_MAX, PGC_SIGHUP, GUC_UNIT_S, nullptr, nullptr, nullptr);
  DefineCustomIntVariable("orchestration.relay_batch_size",
                          "How many events the relay publishes before it waits for acknowledgements.", nullptr,
                          &relay_batch_size, 256, 1, 100000, PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
  DefineCustomStringVariable(
      "orchestration.otlp_endpoint", "Where the relay sends the spans of runs and node attempts (OTLP/HTTP, JSON).",
      "The traces URL of an OpenTelemetry collector, e.g. http://127.0.0.1:4318/v1/traces; empty: no spans are "
      "kept or sent. Readable by every role: put no credentials in it.",
      &otlp_endpoint, "", PGC_SIGHUP, 0, nullptr, nullptr, nullptr);
  DefineCustomStringVariable(
      "orchestration.metrics_listen", "Where the metrics worker serves GET /metrics for Prometheus.",
      "host:port, [ipv6]:port, *:port (every IPv4 interface) or a port alone (127.0.0.1); empty: not served. "
      "The first database of orchestration.database_name is served on that port, the next on the port after it, "
      "and so on. No authentication: the figures are per project but carry no names or data.",
      &metrics_listen, "", PGC_SIGHUP, 0, check_metrics_listen, nullptr, nullptr);
  MarkGUCPrefixReserved("orchestration");
}

std::vector<std::string> scheduler_databases() {
  std::vector<std::string> names;
  std::string all = database_names ? database_names : "";
  std::size_t start = 0;
  while (start <= all.size() && names.size() < static_cast<std::size_t>(kMaxDatabases)) {
    std::size_t comma = all.find(',', start);
    std::string name = all.substr(start, comma == std::string::npos ? std::string::npos
                                                                   : comma - start);
    std::size_t b = name.find_first_not_of(" \t"), e = name.find_last_not_of(" \t");
    if (b != std::string::npos) names.push_back(name.substr(b, e - b + 1));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return names;
}

}  // namespace orch::config
