// The Prometheus endpoint: one background worker per database in
// orchestration.database_name, serving orchestration.metrics() as GET /metrics on
// orchestration.metrics_listen (the first database on its port, the next on the port
// after it, ...). It idles while the setting is empty.
//
// Read it top to bottom: the loop (workers/worker_main) sleeps on the latch and on the
// HTTP server's epoll descriptor; each turn (re)binds when the setting changed, then lets
// the server accept, read and answer what is ready. A scrape is one short read-only
// transaction with a time limit, run here, in the worker's only thread; the HTTP side
// (core/http/metrics_server) bounds connections, request size and time, so a slow or
// hostile client can hold up nothing but itself.
#include "pg/boundary.hpp"

extern "C" {
#include "utils/guc.h"
#include "utils/timeout.h"

PGDLLEXPORT void orch_metrics_main(Datum slot);
}

#include <chrono>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>

#include "config/gucs.hpp"
#include "core/http/metrics_server.hpp"
#include "pg/spi.hpp"
#include "pg/transaction.hpp"
#include "workers/worker_main.hpp"

namespace {

constexpr const char* kName = "pg_orchestration metrics";
constexpr long kIdleMs = 60 * 1000;        // nothing to serve: the latch (a reload) wakes it
constexpr long kRetryBindMs = 10 * 1000;   // the address was taken or refused: try again
constexpr int kScrapeTimeoutMs = 5 * 1000;  // a scrape's transaction; Prometheus's own default is 10 s
// Scrapes that arrive together (a burst, several Prometheus servers) share one reading of
// the tables: its answer is reused for this long.
constexpr auto kScrapeReuse = std::chrono::seconds(1);
using Clock = std::chrono::steady_clock;

void log_line(const std::string& line) {
  orch::pg::guard([&] { ereport(LOG, (errmsg("%s: %s", kName, line.c_str()))); });
}

// The metrics of this database as Prometheus reads them: orchestration.metrics() as a
// superuser (every project), read-only, within kScrapeTimeoutMs.
orch::http::Response scrape() {
  orch::http::Response response;
  response.content_type = "text/plain; version=0.0.4; charset=utf-8";
  try {
    orch::pg::run_transaction("metrics scrape", [&] {
      orch::pg::guard([] {
        (void)set_config_option("transaction_read_only", "on", PGC_USERSET, PGC_S_SESSION, GUC_ACTION_LOCAL, true, 0,
                                false);
      });
      if (!orch::workers::extension_ready()) {
        orch::pg::spi_forget_plans();
        response.status = 503;
        response.content_type = "text/plain; charset=utf-8";
        response.body = "pg_orchestration is not installed in this database, or not at the library's version "
                        "(ALTER EXTENSION pg_orchestration UPDATE).\n";
        return;
      }
      // The timer runs around the statement only and is off before the transaction ends.
      orch::pg::guard([] { enable_timeout_after(STATEMENT_TIMEOUT, kScrapeTimeoutMs); });
      orch::pg::Rows rows = orch::pg::spi_run("SELECT orchestration.metrics()");
      orch::pg::stop_statement_timer();
      response.body = rows.size() == 1 && rows.at(0, 0) ? *rows.at(0, 0) : "";
    });
  } catch (const std::exception& e) {
    orch::pg::stop_statement_timer();
    orch::pg::log_worker_error(kName, e);
    throw;  // the client gets a 500 that says only that it failed
  }
  return response;
}

struct MetricsState final : orch::workers::WorkerLoop {
  int slot = 0;
  std::string serving;  // the setting the server was made for ("" while none)
  std::unique_ptr<orch::http::MetricsServer> server;
  Clock::time_point next_bind_try = Clock::now();
  orch::http::Response last_scrape;  // reused for kScrapeReuse after it was read
  std::optional<Clock::time_point> last_scrape_at;  // none until a scrape succeeded

  long run_once() override {
    std::string setting = orch::config::metrics_listen ? orch::config::metrics_listen : "";
    if (setting != serving) {
      server.reset();
      serving = setting;
      next_bind_try = Clock::now();
      if (setting.empty()) log_line("not serving metrics (orchestration.metrics_listen is empty)");
    }
    if (!server && !serving.empty()) {
      if (Clock::now() < next_bind_try)
        return std::chrono::duration_cast<std::chrono::milliseconds>(next_bind_try - Clock::now()).count() + 1;
      bind();
    }
    if (!server) return serving.empty() ? kIdleMs : kRetryBindMs;
    long next_deadline = server->poll([this] { return scrape_or_reuse(); });
    return next_deadline < 0 ? kIdleMs : next_deadline;
  }

  void bind() {
    try {
      orch::http::ListenAddress where = orch::http::parse_listen_address(serving);
      where.port += slot;  // one port per database
      if (where.port > 65535) throw std::runtime_error("port " + std::to_string(where.port) + " is out of range");
      server = std::make_unique<orch::http::MetricsServer>(where);
      log_line("serving GET /metrics on " + (where.host.empty() ? std::string("*") : where.host) + ":" +
               std::to_string(server->port()));
    } catch (const std::exception& e) {
      // Logged at every try (every kRetryBindMs): an endpoint that is not there is
      // something to see in the log until it is fixed.
      log_line(std::string(e.what()) + "; trying again in " + std::to_string(kRetryBindMs / 1000) + " s");
      next_bind_try = Clock::now() + std::chrono::milliseconds(kRetryBindMs);
    }
  }

  std::vector<int> wake_fds() const override { return {server ? server->wake_fd() : -1}; }

  orch::http::Response scrape_or_reuse() {
    if (last_scrape_at && Clock::now() - *last_scrape_at < kScrapeReuse) return last_scrape;
    last_scrape = scrape();  // a failure is not kept: the next scrape tries again
    last_scrape_at = Clock::now();
    return last_scrape;
  }
};

}  // namespace

void orch_metrics_main(Datum slot) {
  orch::workers::run_worker(slot, orch::workers::Worker::metrics, kName,
                            [](const std::string&, int slot_index, int) -> std::unique_ptr<orch::workers::WorkerLoop> {
                              auto state = std::make_unique<MetricsState>();
                              state->slot = slot_index;
                              return state;
                            });
}
