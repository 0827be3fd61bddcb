#include "scheduler/crash_marker.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "pg/boundary.hpp"

extern "C" {
#include "miscadmin.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
}

namespace orch::scheduler::crash_marker {
namespace {

int marker_fd = -1;
std::uint64_t my_generation = 0;
// "<node> <generation>", padded: always one write.
constexpr std::size_t kRecord = 48;

void format_record(char (&record)[kRecord], std::int64_t node, std::uint64_t generation) {
  std::memset(record, ' ', sizeof record);
  int n = snprintf(record, sizeof record, "%lld %llu", static_cast<long long>(node),
                   static_cast<unsigned long long>(generation));
  if (n > 0 && static_cast<std::size_t>(n) < sizeof record) record[n] = ' ';
  record[kRecord - 1] = '\n';
}

void write_node(std::int64_t node) {
  if (marker_fd < 0) return;
  char record[kRecord];
  format_record(record, node, my_generation);
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

std::string marker_dir() { return std::string(DataDir) + "/pg_orchestration"; }

}  // namespace

void open(const std::string& name, std::uint64_t generation) {
  my_generation = generation;
  std::string dir = marker_dir();
  mkdir(dir.c_str(), 0700);  // EEXIST is fine
  std::string path = dir + "/" + name + ".node";
  marker_fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (marker_fd < 0) {
    std::string message = "pg_orchestration: cannot open " + path + ": " + strerror(errno) +
                          "; nodes that crash this worker will not be failed by the crash-loop breaker";
    pg::guard([&] { ereport(WARNING, (errmsg("%s", message.c_str()))); });
    return;
  }
  format_record(cleared_record, 0, generation);
  pg::guard([] {
    on_proc_exit(clear_on_exit, 0);
    pqsignal(SIGQUIT, clear_on_sigquit);
  });
}

void note_leftovers(unsigned int database_oid, const std::function<void(std::int64_t)>& note) {
  std::string dir = marker_dir();
  std::string scheduler = "scheduler-" + std::to_string(database_oid) + ".node";
  std::string rule_prefix = "rule-" + std::to_string(database_oid) + "-";
  std::vector<std::string> paths;
  if (DIR* listing = opendir(dir.c_str())) {
    while (struct dirent* entry = readdir(listing)) {
      std::string file = entry->d_name;
      if (file == scheduler || (file.rfind(rule_prefix, 0) == 0 && file.size() > 5 &&
                                file.compare(file.size() - 5, 5, ".node") == 0))
        paths.push_back(dir + "/" + file);
    }
    closedir(listing);
  }
  for (const auto& path : paths) {
    int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
    if (fd < 0) continue;
    // One worker notes each leftover: the others wait here, then find it cleared.
    flock(fd, LOCK_EX);
    char record[kRecord + 1] = {};
    ssize_t n = pread(fd, record, kRecord, 0);
    char* end = nullptr;
    long long node = n > 0 ? std::strtoll(record, &end, 10) : 0;
    unsigned long long generation = end ? std::strtoull(end, nullptr, 10) : 0;
    if (node > 0 && generation != my_generation) {
      try {
        note(node);
      } catch (...) {
        flock(fd, LOCK_UN);
        ::close(fd);
        throw;  // not noted: the marker stays for the next try
      }
      char cleared[kRecord];
      format_record(cleared, 0, my_generation);
      [[maybe_unused]] ssize_t written = pwrite(fd, cleared, kRecord, 0);
    }
    flock(fd, LOCK_UN);
    ::close(fd);
  }
}

void working_on(std::int64_t node) { write_node(node); }

}  // namespace orch::scheduler::crash_marker
