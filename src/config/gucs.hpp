// The extension's settings (orchestration.*), defined in _PG_init. Workers read them
// through these variables; SQL reads them with current_setting().
#pragma once

#include <string>
#include <vector>

namespace orch::config {

extern char* database_names;  // orchestration.database_name: one scheduler per listed database
extern int poll_interval_ms;
extern int max_concurrent_nodes;
extern int max_concurrent_nodes_per_project;
extern int approval_timeout_seconds;
extern bool approval_four_eyes;
extern bool notify_details;
extern int max_nodes_per_transaction;
extern int rule_workers;  // RULE worker processes per database (0: RULE nodes run in the scheduler)
// The Docker executor.
extern char* docker_host;
extern char* docker_tls_ca;
extern char* docker_tls_cert;
extern char* docker_tls_key;
extern char* allowed_images;
extern int max_output_bytes;
extern int max_log_bytes;
extern int container_max_memory_mb;
extern double container_max_cpus;
extern int container_max_pids;
extern bool container_allow_network;
// The NATS relay.
extern char* nats_url;
extern char* nats_credentials_file;
extern char* nats_tls_ca;
extern char* nats_tls_cert;
extern char* nats_tls_key;
extern bool nats_jetstream;
extern char* nats_stream;
extern char* nats_queue_group;
extern int event_retention_seconds;
extern int relay_batch_size;
// Traces.
extern char* otlp_endpoint;
// Prometheus: where the metrics worker serves GET /metrics ("" = nowhere).
extern char* metrics_listen;

inline constexpr int kMaxDatabases = 8;
inline constexpr int kMaxRuleWorkers = 16;  // per database

void define_gucs();

// orchestration.database_name split at commas, trimmed, at most kMaxDatabases.
std::vector<std::string> scheduler_databases();

}  // namespace orch::config
