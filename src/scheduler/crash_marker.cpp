#include "scheduler/crash_marker.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "pg/boundary.hpp"

extern "C" {
#include "miscadmin.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
}

namespace orch::scheduler::crash_marker {
namespace {

int marker_fd = -1;
constexpr std::size_t kRecord = 24;  // a bigint in decimal, padded: always one write

void write_node(std::int64_t node) {
  if (marker_fd < 0) return;
  char record[kRecord];
  std::memset(record, ' ', sizeof record);
  int n = snprintf(record, sizeof record, "%lld", static_cast<long long>(node));
  if (n > 0 && static_cast<std::size_t>(n) < sizeof record) record[n] = ' ';
  record[kRecord - 1] = '\n';
  // Best effort: a marker that cannot be written only disables the breaker.
  [[maybe_unused]] ssize_t written = pwrite(marker_fd, record, sizeof record, 0);
}

// proc_exit runs this on every orderly exit (FATAL, SIGTERM, shutdown); a crash skips it.
void clear_on_exit(int, Datum) { write_node(0); }

// SIGQUIT: another process crashed and the postmaster ends every backend. This one did
// not crash on its node: the marker is cleared (pwrite of a record made in advance is
// async-signal-safe) before the usual quick exit, so only the process that crashed
// counts a crash for its node.
char cleared_record[kRecord];
void clear_on_sigquit(int signal) {
  if (marker_fd >= 0) {
    [[maybe_unused]] ssize_t written = pwrite(marker_fd, cleared_record, kRecord, 0);
  }
  SignalHandlerForCrashExit(signal);
}

}  // namespace

std::int64_t open(const std::string& name) {
  std::string dir = std::string(DataDir) + "/pg_orchestration";
  mkdir(dir.c_str(), 0700);  // EEXIST is fine
  std::string path = dir + "/" + name + ".node";
  marker_fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (marker_fd < 0) {
    std::string message = "pg_orchestration: cannot open " + path + ": " + strerror(errno) +
                          "; nodes that crash this worker will not be failed by the crash-loop breaker";
    pg::guard([&] { ereport(WARNING, (errmsg("%s", message.c_str()))); });
    return 0;
  }
  char record[kRecord + 1] = {};
  ssize_t n = pread(marker_fd, record, kRecord, 0);
  std::int64_t left = n > 0 ? std::strtoll(record, nullptr, 10) : 0;
  std::memset(cleared_record, ' ', kRecord);
  cleared_record[0] = '0';
  cleared_record[kRecord - 1] = '\n';
  pg::guard([] {
    on_proc_exit(clear_on_exit, 0);
    pqsignal(SIGQUIT, clear_on_sigquit);
  });
  return left > 0 ? left : 0;
}

void working_on(std::int64_t node) { write_node(node); }

}  // namespace orch::scheduler::crash_marker
