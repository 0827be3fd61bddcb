// Waking the background workers at commit, without polling and without pointers in
// shared memory.
//
// Each worker (the scheduler, its RULE workers and the relay of a database) publishes its
// database and its PGPROC number in a small shared memory array. A backend that creates
// work (a runnable node, an outbox event) calls request_wake_at_commit(); when its
// transaction commits (and only then), a transaction callback sets the latches of the
// workers of its database that take that work. On rollback nothing happens: no work, no
// wake-up.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace orch::workers {

// Runnable container nodes are the scheduler's (Worker::scheduler), runnable RULE nodes
// the RULE workers' (Worker::rule: one of them is woken, the first that sleeps; with
// orchestration.rule_workers = 0, the scheduler). Worker::metrics (the Prometheus
// endpoint) is never woken by a commit and has no slot.
enum class Worker { scheduler = 0, relay = 1, rule = 2, metrics = 3 };

// From _PG_init while preloading: asks for the shared memory.
void request_shared_memory();

// The worker announces itself in its slot (and leaves it when it exits); `index` numbers
// the RULE workers of a database.
void register_worker(Worker worker, int slot, int index);

// Called by the SQL API (orchestration.wake_workers(), wake_scheduler(), wake_relay()).
// A RULE worker's own commits wake no other RULE worker: it looks again itself. For
// Worker::rule, `project` names the one project whose nodes the request is for (0: not
// named, or several).
void request_wake_at_commit(Worker worker, std::int64_t project = 0);

// In a RULE worker, before its pass (before its transaction takes a snapshot): takes the
// requests to look again that came while it slept or since its last pass, which the
// pass's claim answers (must_look_again).
void take_requests_before_pass();

// In a RULE worker, after a pass that served `served_project` (0: none, its claim found
// nothing): whether to look again before it sleeps. Yes when a commit of its own made RULE
// nodes runnable (it woke no other RULE worker); when it was told to, or woken, while the
// pass ran (wake_now, a commit that found every RULE worker busy, wake_rule_worker): the
// claim may have come before what it was told of; and when a commit woke it before the
// pass and the pass served a project, unless that commit named the one project it released
// and the pass served it (a pass serves one project; the commit may have made nodes of
// several runnable, or of another than the pass took). A pass whose claim found nothing
// has answered every request made before it began: a second would find nothing either.
bool must_look_again(int served_project);

// Wakes the workers of that kind of this database at once (for Worker::rule, one).
void wake_now(Worker worker);

// Tells this database's RULE worker with that index (rule_pool numbers them alike) to
// look again: at once if it sleeps, after its pass if not.
void wake_rule_worker(int index);

// The worker is about to wait on its latch (true) or has woken (false); a commit that
// makes RULE nodes runnable wakes a sleeping RULE worker rather than a busy one.
void set_sleeping(bool sleeping);

// A backend about to wait for a run's row lock (cancel_run, retry_run, approve, reject)
// announces the run here until its transaction ends. The scheduler does not claim nodes
// of announced runs, so the waiter gets the lock after at most the scheduler's current
// transaction, instead of losing it to the scheduler again and again. Best effort: with
// every slot taken, or without shared memory, it does nothing.
void reserve_run_until_transaction_end(std::int64_t run_id);

// The runs announced right now.
std::vector<std::int64_t> reserved_runs();

// Waiting for runs to change (wait_for_run): a backend watches its database until its
// transaction ends, and every commit there that wrote events (a run or node changed: the
// same commits that wake the relay) sets its latch. Returns false when it was already
// watching, true when it starts watching now, so the caller looks at the runs again
// before it sleeps (a change committed before the watch began woke nobody). With every
// slot taken (kWaiterSlots), or without shared memory, it cannot watch: `watching` tells.
struct Watch {
  bool started_now = false;
  bool watching = false;
};
Watch watch_until_transaction_end();

}  // namespace orch::workers
