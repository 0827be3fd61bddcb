// The relay's connection to NATS (nats.c), without Postgres.
//
// nats.c runs its own threads (reader, flusher, reconnect, subscription delivery, async
// acknowledgements). None of them calls Postgres: what they produce (acknowledgements,
// inbound messages, status changes to log) goes into queues here, and a byte into a
// WakePipe the relay's WaitLatchOrSocket watches. Every call below is made from the
// relay's main thread, with signals blocked (nats.c may start a thread in any of them).
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "core/threads/thread_handoff.hpp"

// nats.c's types, so that including this header does not pull nats.h everywhere.
struct __natsConnection;
struct __natsOptions;
struct __natsSubscription;
struct __jsCtx;

namespace orch::nats {

struct Settings {
  std::string url;               // one or more, comma-separated; may carry user:password@
  std::string credentials_file;  // a .creds file (JWT + nkey seed); empty: none
  std::string tls_ca, tls_cert, tls_key;
  bool jetstream = true;
  std::string stream;            // JetStream stream to create or check, covering subject_prefix.>
  std::string subject_prefix;    // "orchestration"
  std::string queue_group;       // inbound subscriptions join it
  std::string client_name;       // shown by the server's /connz
  int ack_wait_ms = 5000;        // how long to wait for the server's acknowledgements

  bool operator==(const Settings& other) const;
  bool operator!=(const Settings& other) const { return !(*this == other); }
};

struct OutgoingMessage {
  std::string msg_id;   // Nats-Msg-Id: JetStream drops a re-send within its duplicate window
  std::string subject;
  std::string payload;
};

struct InboundMessage {
  std::string pattern;  // the subscription (a trigger's subject, maybe with wildcards)
  std::string subject;  // the message's own subject
  std::string reply;    // empty: nobody waits for an answer
  std::string data;
};

class Link {
 public:
  // Starts connecting in the background and returns at once, reachable server or not;
  // throws std::runtime_error on settings nats.c refuses (a bad URL, a missing file).
  explicit Link(Settings settings);
  ~Link();
  Link(const Link&) = delete;
  Link& operator=(const Link&) = delete;

  const Settings& settings() const { return settings_; }
  int wake_fd() const { return wake_.fd(); }
  bool connected() const;

  // Publishes in order and returns how many messages, counted from the first, the server
  // has acknowledged (JetStream: stored in the stream, or recognised as a duplicate) or,
  // without JetStream, has received (a flush). Stops at the first failure, and when the
  // connection dropped during the batch: nothing after a lost message is sent, so the
  // stream keeps the outbox's order. The reason for a short count is in last_error().
  std::size_t publish(const std::vector<OutgoingMessage>& messages);
  const std::string& last_error() const { return last_error_; }

  // The largest message the server takes (it says so when a client connects); 0 while
  // not connected.
  std::int64_t max_payload() const;

  // Subscribes to every pattern not yet subscribed and unsubscribes from the others.
  void subscribe(const std::set<std::string>& patterns);
  void reply(const std::string& to, const std::string& body);

  // What nats.c's threads left for the main thread; each call empties its queue.
  std::vector<InboundMessage> take_messages();
  std::vector<std::string> take_log();  // connection changes and asynchronous errors
  void drain_wake();

 private:
  friend struct Callbacks;  // nats.c's callbacks, on its threads (nats_link.cpp)

  void log(std::string line);
  bool ensure_stream();
  std::size_t publish_jetstream(const std::vector<OutgoingMessage>& messages);
  std::size_t publish_core(const std::vector<OutgoingMessage>& messages);

  Settings settings_;
  threads::WakePipe wake_;
  __natsOptions* options_ = nullptr;
  __natsConnection* connection_ = nullptr;
  __jsCtx* jetstream_ = nullptr;
  bool stream_checked_ = false;
  std::map<std::string, __natsSubscription*> subscriptions_;
  std::string last_error_;

  std::atomic<std::uint64_t> disconnects_{0};  // a change during a batch ends the batch
  std::mutex mutex_;                           // guards what follows
  std::map<std::string, bool> acks_;           // msg id -> stored
  std::vector<InboundMessage> inbound_;
  std::vector<std::string> log_;
};

}  // namespace orch::nats
