// The NATS relay background worker: one per database in orchestration.database_name,
// beside that database's scheduler.
//
// Read it top to bottom: set up signals, connect to the database, announce itself so that
// commits that write events can wake it, then loop: handle interrupts and reloads,
// (re)connect to NATS when the settings say so, start workflows for the trigger messages
// that came in, publish the outbox in id order, move span export on, prune old published
// events (and stale spans), and sleep on the latch, the NATS link's pipe and the span
// exporter's. Nothing here ever waits for NATS or the collector while a transaction is
// open, and nothing in the scheduler waits for the relay.
//
// Span export has a thread of its own (otlp::ExportThread), so that a collector that
// accepts the connection and never answers holds back spans, not events. Only this, the
// main thread, calls Postgres: it reads a batch from span_queue and hands it over (one
// batch at a time: the hand-over holds one); the export thread POSTs it, with a timeout;
// its outcome comes back through the exporter's pipe, and this thread forgets the spans
// the collector accepted (spans_sent) or backs off before it tries again. Events are
// published at every turn meanwhile.
#include "pg/boundary.hpp"

extern "C" {
PGDLLEXPORT void orch_relay_main(Datum slot);
}

#include <algorithm>
#include <chrono>
#include <memory>
#include <optional>
#include <set>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/gucs.hpp"
#include "core/common/array_literal.hpp"
#include "core/nats/nats_link.hpp"
#include "core/nats/oversized_event.hpp"
#include "core/otlp/otlp_exporter.hpp"
#include "pg/spi.hpp"
#include "pg/transaction.hpp"
#include "workers/worker_main.hpp"

namespace {

constexpr const char* kName = "pg_orchestration relay";
constexpr long kIdleMs = 60 * 1000;          // the longest sleep; pruning runs at least this often
constexpr long kRetryMs = 1000;              // after a failed publish, NATS down or not
using Clock = std::chrono::steady_clock;

void log_line(const std::string& line) {
  orch::pg::guard([&] { ereport(LOG, (errmsg("%s: %s", kName, line.c_str()))); });
}

std::string text(const char* setting) { return setting ? setting : ""; }

orch::nats::Settings settings_now(const std::string& database) {
  orch::nats::Settings s;
  s.url = text(orch::config::nats_url);
  s.credentials_file = text(orch::config::nats_credentials_file);
  s.tls_ca = text(orch::config::nats_tls_ca);
  s.tls_cert = text(orch::config::nats_tls_cert);
  s.tls_key = text(orch::config::nats_tls_key);
  s.jetstream = orch::config::nats_jetstream;
  s.stream = text(orch::config::nats_stream);
  s.subject_prefix = "orchestration";
  s.queue_group = text(orch::config::nats_queue_group);
  s.client_name = std::string(kName) + " " + database;
  return s;
}

using orch::workers::extension_ready;

struct RelayState final : orch::workers::WorkerLoop {
  std::string database;
  std::unique_ptr<orch::nats::Link> link;  // null while nats_url is empty
  orch::otlp::ExportThread exporter;
  Clock::time_point next_prune = Clock::now();
  std::string last_problem;  // logged once, not at every retry
  std::string span_problem;  // the same, for the OTLP endpoint
  Clock::time_point next_span_try = Clock::now();  // backs off while the endpoint fails
  long span_backoff_ms = 0;

  long run_once() override;
  // Woken by a commit that wrote an event or changed a workflow (the latch), by the NATS
  // link (a trigger message, a reconnect: its pipe), by the exporter (a batch of spans
  // sent or failed: its pipe), or by the timeout.
  std::vector<int> wake_fds() const override {
    return {link ? link->wake_fd() : -1, exporter.wake_fd()};
  }
  void reloaded() override;  // a shorter event_retention prunes sooner
};

// The settings changed (or this is the first loop): a new link, or none.
void follow_settings(RelayState& state) {
  orch::nats::Settings wanted = settings_now(state.database);
  if (state.link && state.link->settings() == wanted) return;
  if (!state.link && wanted.url.empty()) return;
  state.link.reset();
  if (wanted.url.empty()) {
    log_line("orchestration.nats_url is empty: relay off, events stay in the outbox");
    return;
  }
  try {
    state.link = std::make_unique<orch::nats::Link>(wanted);
    log_line("publishing to " + std::string(wanted.jetstream ? "JetStream stream \"" + wanted.stream + "\" at " : "core NATS at ") +
             wanted.url);
  } catch (const std::exception& e) {
    orch::pg::log_worker_error(kName, e);  // retried at the next reload or loop
  }
}

// What a turn acts on, read in one transaction (one per turn: a turn's fixed cost competes
// with the workers for the same cores): the subjects the relay is to be subscribed to, as
// workflows' NATS triggers say now, and the oldest unpublished events.
struct Outbox {
  std::set<std::string> trigger_subjects;
  std::vector<std::int64_t> ids;
  std::vector<orch::nats::OutgoingMessage> batch;
};

Outbox read_outbox() {
  Outbox outbox;
  orch::pg::run_transaction("pg_orchestration: reading the outbox", [&] {
    if (!extension_ready()) return;
    for (const auto& row : orch::pg::spi_run("SELECT orchestration.nats_trigger_subjects()").rows)
      if (row[0]) outbox.trigger_subjects.insert(*row[0]);
    orch::pg::Rows rows = orch::pg::spi_run("SELECT * FROM orchestration.relay_next_events($1::integer)",
                                            {std::to_string(orch::config::relay_batch_size)});
    orch::pg::RowReader events(rows, "relay_next_events");
    for (std::size_t i = 0; i < events.size(); ++i) {
      outbox.ids.push_back(events.int64(i, "id"));
      outbox.batch.push_back({events.value(i, "msg_id").value_or(std::to_string(outbox.ids.back())),
                              events.text(i, "subject"), events.text(i, "payload")});
    }
  });
  return outbox;
}

// Keeps the subscriptions in step with workflows; starts the workflows of the trigger
// messages that arrived, one transaction each, and answers those that asked for an answer.
void take_triggers(RelayState& state, const std::set<std::string>& patterns) {
  orch::nats::Link& link = *state.link;
  link.subscribe(patterns);
  for (auto& message : link.take_messages()) {
    std::string answer;
    try {
      orch::pg::run_transaction("pg_orchestration: NATS trigger", [&] {
        orch::pg::Rows rows = orch::pg::spi_run(
            "SELECT orchestration.start_workflows_from_nats($1, $2, $3)::text",
            {message.pattern, message.subject, message.data});
        answer = rows.at(0, 0).value_or("{}");
      });
    } catch (const std::exception& e) {
      answer = nlohmann::json{{"error", e.what()}}.dump();
      orch::pg::spi_forget_plans();
    }
    nlohmann::json parsed = nlohmann::json::parse(answer, nullptr, false);
    if (parsed.is_object() && parsed.contains("error"))
      log_line("a trigger message on \"" + message.subject + "\" started nothing: " + parsed.value("error", answer));
    link.reply(message.reply, answer);
  }
}

// Publishes the batch read; returns true when a full batch went out (there may be more).
bool publish_batch(RelayState& state, Outbox& outbox) {
  std::vector<std::int64_t>& ids = outbox.ids;
  std::vector<orch::nats::OutgoingMessage>& batch = outbox.batch;
  if (batch.empty()) return false;
  // An event larger than the server takes goes out reduced (oversized_event.hpp), so it
  // cannot hold back the events after it.
  std::int64_t max_payload = state.link->max_payload();
  for (std::size_t i = 0; i < batch.size(); ++i)
    if (!orch::nats::fits(batch[i].payload.size(), max_payload))
      batch[i].payload = orch::nats::reduced_event(batch[i].payload, ids[i]);
  std::size_t published = state.link->publish(batch);
  if (published == 0 && state.link->connected() && batch[0].payload.size() > orch::nats::kHeaderAllowance &&
      state.link->last_error().find("Maximum Payload") != std::string::npos) {
    // Refused for its size although the announced limit said otherwise (another server
    // of the cluster, say): once more, reduced.
    log_line("event " + std::to_string(ids[0]) + " was refused (" + state.link->last_error() + "); publishing it reduced");
    batch.resize(1);
    batch[0].payload = orch::nats::reduced_event(batch[0].payload, ids[0]);
    published = state.link->publish(batch);
  }
  if (published > 0) {
    std::string literal = orch::array_literal({ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(published)});
    orch::pg::run_transaction("pg_orchestration: marking events published", [&] {
      orch::pg::spi_run("SELECT orchestration.relay_mark_published($1::bigint[])", {literal});
    });
  }
  if (published < batch.size()) {
    std::string problem = state.link->last_error();
    if (problem != state.last_problem)
      log_line(std::to_string(batch.size() - published) + " events wait in the outbox: " + problem);
    state.last_problem = problem;
    return false;
  }
  state.last_problem.clear();
  return published == static_cast<std::size_t>(orch::config::relay_batch_size);
}

// Moves span export on (the export thread sends; see the header comment): takes the
// outcome of the batch sent, forgetting the spans the collector accepted or backing off
// if it did not, then hands over the next batch unless one is under way or the back-off
// runs. A collector that does not answer costs the export thread one timeout per try, and
// tries back off; its spans wait in span_queue (at most orchestration.event_retention).
void export_spans(RelayState& state) {
  constexpr int kBatch = 512;
  constexpr long kTimeoutMs = 5000;
  if (std::optional<orch::otlp::Sent> sent = state.exporter.take_result()) {
    const orch::otlp::Delivery& delivery = sent->delivery;
    if (delivery.accepted) {
      state.span_problem.clear();
      state.span_backoff_ms = 0;
      orch::pg::run_transaction("pg_orchestration: forgetting sent spans", [&] {
        orch::pg::spi_run("SELECT orchestration.spans_sent($1::bigint[])", {orch::array_literal(sent->ids)});
      });
    } else {
      if (delivery.problem != state.span_problem)
        log_line(std::to_string(sent->ids.size()) + " or more spans wait: " + delivery.problem);
      state.span_problem = delivery.problem;
      // 1 s, 2 s, 4 s ... 60 s between tries while the collector fails.
      state.span_backoff_ms = std::min(kIdleMs, std::max(kRetryMs, state.span_backoff_ms * 2));
      state.next_span_try = Clock::now() + std::chrono::milliseconds(state.span_backoff_ms);
    }
  }
  std::string endpoint = text(orch::config::otlp_endpoint);
  if (endpoint.empty() || state.exporter.busy() || Clock::now() < state.next_span_try) return;
  orch::otlp::Batch batch;
  std::vector<std::string> spans;
  orch::pg::run_transaction("pg_orchestration: reading spans", [&] {
    if (!extension_ready()) return;
    orch::pg::Rows rows = orch::pg::spi_run("SELECT * FROM orchestration.spans_to_send($1::integer)",
                                            {std::to_string(kBatch)});
    orch::pg::RowReader queued(rows, "spans_to_send");
    for (std::size_t i = 0; i < queued.size(); ++i) {
      batch.ids.push_back(queued.int64(i, "id"));
      spans.push_back(queued.text(i, "span"));
    }
  });
  if (spans.empty()) return;
  batch.endpoint = endpoint;
  batch.request = orch::otlp::export_request(spans, state.database);
  batch.timeout_ms = kTimeoutMs;
  state.exporter.offer(std::move(batch));
}

// How long until `when`, in milliseconds; 0 once it has passed.
long ms_until(Clock::time_point when) {
  return std::max(0L, static_cast<long>(std::chrono::duration_cast<std::chrono::milliseconds>(when - Clock::now()).count()));
}

// Pruning runs every minute, or as often as the retention if that is shorter (but at most
// once a second).
Clock::time_point next_prune_from(Clock::time_point now) {
  long every_ms = std::max(1000L, std::min(kIdleMs, 1000L * orch::config::event_retention_seconds));
  return now + std::chrono::milliseconds(every_ms);
}

void prune_if_due(RelayState& state) {
  if (Clock::now() < state.next_prune) return;
  state.next_prune = next_prune_from(Clock::now());
  orch::pg::run_transaction("pg_orchestration: pruning events", [&] {
    if (!extension_ready()) return;
    orch::pg::spi_run("SELECT orchestration.prune_events(make_interval(secs => $1::integer))",
                      {std::to_string(orch::config::event_retention_seconds)});
  });
}

void RelayState::reloaded() { next_prune = std::min(next_prune, next_prune_from(Clock::now())); }

// One turn; returns how long to sleep (0: go on at once).
long RelayState::run_once() {
  RelayState& state = *this;
  long sleep_ms = kIdleMs;
  try {
    follow_settings(state);
    if (state.link) {
      state.link->drain_wake();
      for (const auto& line : state.link->take_log()) log_line(line);
      if (state.link->connected()) {
        Outbox outbox = read_outbox();
        take_triggers(state, outbox.trigger_subjects);
        if (publish_batch(state, outbox)) sleep_ms = 0;
        else if (!state.last_problem.empty()) sleep_ms = kRetryMs;
      } else {
        sleep_ms = kRetryMs;  // the link's pipe wakes us sooner when it reconnects
      }
    }
    export_spans(state);  // its thread wakes us when a batch is done
    if (!state.exporter.busy() && !state.span_problem.empty())
      sleep_ms = std::min(sleep_ms, ms_until(state.next_span_try));
    prune_if_due(state);
    sleep_ms = std::min(sleep_ms, ms_until(state.next_prune));
  } catch (const std::exception& e) {
    orch::pg::log_worker_error(kName, e);
    orch::pg::spi_forget_plans();
    sleep_ms = kRetryMs;
  }
  return sleep_ms;
}

}  // namespace

void orch_relay_main(Datum slot) {
  orch::workers::run_worker(slot, orch::workers::Worker::relay, kName,
                            [](const std::string& database, int, int) -> std::unique_ptr<orch::workers::WorkerLoop> {
                              auto state = std::make_unique<RelayState>();
                              state->database = database;
                              return state;
                            });
}
