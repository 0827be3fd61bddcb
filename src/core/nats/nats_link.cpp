#include "core/nats/nats_link.hpp"

#include <nats/nats.h>

#include <stdexcept>

namespace orch::nats {

bool Settings::operator==(const Settings& o) const {
  return url == o.url && credentials_file == o.credentials_file && tls_ca == o.tls_ca &&
         tls_cert == o.tls_cert && tls_key == o.tls_key && jetstream == o.jetstream && stream == o.stream &&
         subject_prefix == o.subject_prefix && queue_group == o.queue_group && client_name == o.client_name &&
         ack_wait_ms == o.ack_wait_ms;
}

namespace {

void check(natsStatus status, const std::string& what) {
  if (status != NATS_OK)
    throw std::runtime_error(what + ": " + natsStatus_GetText(status) + " (" + nats_GetLastError(nullptr) + ")");
}

std::string status_text(natsStatus status) {
  std::string text = natsStatus_GetText(status);
  const char* detail = nats_GetLastError(nullptr);
  if (detail && *detail && text != detail) text += std::string(" (") + detail + ")";
  return text;
}

}  // namespace

// Everything here runs on nats.c's threads: it only touches the queues and the pipe.
struct Callbacks {
  static void ack(jsCtx*, natsMsg* msg, jsPubAck* pa, jsPubAckErr* pae, void* closure) {
    auto* link = static_cast<Link*>(closure);
    const char* id = nullptr;
    if (natsMsgHeader_Get(msg, "Nats-Msg-Id", &id) == NATS_OK && id) {
      std::lock_guard<std::mutex> lock(link->mutex_);
      link->acks_[id] = pa != nullptr;
      if (pae && link->log_.size() < 100)
        link->log_.push_back(std::string("JetStream refused event ") + id + ": " +
                             (pae->ErrText ? pae->ErrText : natsStatus_GetText(pae->Err)));
    }
    natsMsg_Destroy(msg);
  }

  static void message(natsConnection*, natsSubscription* sub, natsMsg* msg, void* closure) {
    auto* link = static_cast<Link*>(closure);
    InboundMessage in;
    in.pattern = natsSubscription_GetSubject(sub);
    in.subject = natsMsg_GetSubject(msg);
    if (const char* reply = natsMsg_GetReply(msg)) in.reply = reply;
    in.data.assign(natsMsg_GetData(msg), static_cast<std::size_t>(natsMsg_GetDataLength(msg)));
    natsMsg_Destroy(msg);
    {
      std::lock_guard<std::mutex> lock(link->mutex_);
      link->inbound_.push_back(std::move(in));
    }
    link->wake_.notify();
  }

  static void connected(natsConnection*, void* closure) {
    static_cast<Link*>(closure)->log("connected to NATS");
  }
  static void disconnected(natsConnection*, void* closure) {
    auto* link = static_cast<Link*>(closure);
    link->disconnects_.fetch_add(1);
    link->log("disconnected from NATS; reconnecting (events wait in the outbox)");
  }
  static void reconnected(natsConnection*, void* closure) {
    static_cast<Link*>(closure)->log("reconnected to NATS");
  }
  static void closed(natsConnection*, void* closure) {
    static_cast<Link*>(closure)->disconnects_.fetch_add(1);
  }
  static void error(natsConnection*, natsSubscription*, natsStatus status, void* closure) {
    static_cast<Link*>(closure)->log(std::string("NATS error: ") + natsStatus_GetText(status));
  }
};

Link::Link(Settings settings) : settings_(std::move(settings)) {
  threads::SignalsBlocked blocked;  // nats.c starts threads from here on
  static bool opened = false;  // once per process; nats_Close would end every Link
  if (!opened) check(nats_Open(-1), "nats_Open");
  opened = true;
  check(natsOptions_Create(&options_), "natsOptions_Create");
  check(natsOptions_SetURL(options_, settings_.url.c_str()), "orchestration.nats_url \"" + settings_.url + "\"");
  check(natsOptions_SetName(options_, settings_.client_name.c_str()), "natsOptions_SetName");
  // The outbox is the buffer: with nats.c's own reconnect buffer off, a publish while
  // disconnected fails at once instead of being held in memory and lost with the process.
  check(natsOptions_SetReconnectBufSize(options_, 0), "natsOptions_SetReconnectBufSize");
  check(natsOptions_SetMaxReconnect(options_, -1), "natsOptions_SetMaxReconnect");
  check(natsOptions_SetReconnectWait(options_, 500), "natsOptions_SetReconnectWait");
  // Without a connected callback, Connect with retry never returns while the server is down.
  check(natsOptions_SetRetryOnFailedConnect(options_, true, Callbacks::connected, this),
        "natsOptions_SetRetryOnFailedConnect");
  check(natsOptions_SetDisconnectedCB(options_, Callbacks::disconnected, this), "natsOptions_SetDisconnectedCB");
  check(natsOptions_SetReconnectedCB(options_, Callbacks::reconnected, this), "natsOptions_SetReconnectedCB");
  check(natsOptions_SetClosedCB(options_, Callbacks::closed, this), "natsOptions_SetClosedCB");
  check(natsOptions_SetErrorHandler(options_, Callbacks::error, this), "natsOptions_SetErrorHandler");
  if (!settings_.credentials_file.empty())
    check(natsOptions_SetUserCredentialsFromFiles(options_, settings_.credentials_file.c_str(), nullptr),
          "orchestration.nats_credentials_file");
  if (!settings_.tls_ca.empty() || !settings_.tls_cert.empty()) {
    check(natsOptions_SetSecure(options_, true), "natsOptions_SetSecure");
    if (!settings_.tls_ca.empty())
      check(natsOptions_LoadCATrustedCertificates(options_, settings_.tls_ca.c_str()), "orchestration.nats_tls_ca");
    if (!settings_.tls_cert.empty())
      check(natsOptions_LoadCertificatesChain(options_, settings_.tls_cert.c_str(), settings_.tls_key.c_str()),
            "orchestration.nats_tls_cert/nats_tls_key");
  }
  natsStatus status = natsConnection_Connect(&connection_, options_);
  if (status != NATS_OK && status != NATS_NOT_YET_CONNECTED) {
    natsOptions_Destroy(options_);
    check(status, "connecting to " + settings_.url);
  }
  if (status == NATS_NOT_YET_CONNECTED) log("NATS at " + settings_.url + " is not reachable yet; retrying");
  if (settings_.jetstream) {
    jsOptions js_options;
    jsOptions_Init(&js_options);
    js_options.Wait = settings_.ack_wait_ms;
    js_options.PublishAsync.AckHandler = Callbacks::ack;
    js_options.PublishAsync.AckHandlerClosure = this;
    check(natsConnection_JetStream(&jetstream_, connection_, &js_options), "natsConnection_JetStream");
  }
}

Link::~Link() {
  threads::SignalsBlocked blocked;
  // Closed first: no new message or acknowledgement is delivered to this Link after it.
  if (connection_) natsConnection_Close(connection_);
  for (auto& entry : subscriptions_) natsSubscription_Destroy(entry.second);
  if (jetstream_) jsCtx_Destroy(jetstream_);
  if (connection_) natsConnection_Destroy(connection_);
  natsOptions_Destroy(options_);
}

bool Link::connected() const { return connection_ && natsConnection_Status(connection_) == NATS_CONN_STATUS_CONNECTED; }

void Link::log(std::string line) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (log_.size() < 100) log_.push_back(std::move(line));
  }
  wake_.notify();
}

std::vector<InboundMessage> Link::take_messages() {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<InboundMessage> out;
  out.swap(inbound_);
  return out;
}

std::vector<std::string> Link::take_log() {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<std::string> out;
  out.swap(log_);
  return out;
}

void Link::drain_wake() { wake_.drain(); }

std::int64_t Link::max_payload() const {
  return connection_ && connected() ? natsConnection_GetMaxPayload(connection_) : 0;
}

std::size_t Link::publish(const std::vector<OutgoingMessage>& messages) {
  last_error_.clear();
  if (messages.empty()) return 0;
  if (!connected()) {
    last_error_ = "not connected to NATS";
    return 0;
  }
  threads::SignalsBlocked blocked;
  return settings_.jetstream ? publish_jetstream(messages) : publish_core(messages);
}

// Creates the stream when it does not exist; when it does, checks that it covers the
// events' subjects. Checked once per connection, and again after a refused publish.
bool Link::ensure_stream() {
  if (stream_checked_) return true;
  std::string wanted = settings_.subject_prefix + ".>";
  jsStreamInfo* info = nullptr;
  jsErrCode code = static_cast<jsErrCode>(0);
  natsStatus status = js_GetStreamInfo(&info, jetstream_, settings_.stream.c_str(), nullptr, &code);
  if (status == NATS_OK) {
    bool covers = false;
    for (int i = 0; i < info->Config->SubjectsLen; ++i) {
      std::string subject = info->Config->Subjects[i];
      covers = covers || subject == wanted || subject == ">";
    }
    jsStreamInfo_Destroy(info);
    if (!covers) log("JetStream stream \"" + settings_.stream + "\" does not cover \"" + wanted + "\"; events to other subjects will be refused");
    stream_checked_ = true;
    return true;
  }
  if (code != JSStreamNotFoundErr) {
    last_error_ = "JetStream stream \"" + settings_.stream + "\": " + status_text(status);
    return false;
  }
  jsStreamConfig config;
  jsStreamConfig_Init(&config);
  config.Name = settings_.stream.c_str();
  const char* subjects[] = {wanted.c_str()};
  config.Subjects = subjects;
  config.SubjectsLen = 1;
  config.Storage = js_FileStorage;
  status = js_AddStream(&info, jetstream_, &config, nullptr, &code);
  if (status != NATS_OK) {
    last_error_ = "creating JetStream stream \"" + settings_.stream + "\": " + status_text(status);
    return false;
  }
  jsStreamInfo_Destroy(info);
  log("created JetStream stream \"" + settings_.stream + "\" for \"" + wanted + "\"");
  stream_checked_ = true;
  return true;
}

std::size_t Link::publish_jetstream(const std::vector<OutgoingMessage>& messages) {
  if (!ensure_stream()) return 0;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    acks_.clear();
  }
  std::uint64_t disconnects = disconnects_.load();
  jsPubOptions options;
  jsPubOptions_Init(&options);
  options.MaxWait = settings_.ack_wait_ms;  // a lost acknowledgement becomes a timeout
  std::size_t sent = 0;
  for (const auto& message : messages) {
    if (disconnects_.load() != disconnects) {
      last_error_ = "the connection dropped during the batch";
      break;
    }
    natsMsg* msg = nullptr;
    natsStatus status = natsMsg_Create(&msg, message.subject.c_str(), nullptr, message.payload.data(),
                                       static_cast<int>(message.payload.size()));
    if (status == NATS_OK) status = natsMsgHeader_Set(msg, "Nats-Msg-Id", message.msg_id.c_str());
    if (status == NATS_OK) status = natsMsgHeader_Set(msg, "Content-Type", "application/cloudevents+json");
    if (status == NATS_OK) status = js_PublishMsgAsync(jetstream_, &msg, &options);
    natsMsg_Destroy(msg);  // null when the library took it
    if (status != NATS_OK) {
      last_error_ = "publish: " + status_text(status);
      break;
    }
    ++sent;
  }
  jsPubOptions complete;
  jsPubOptions_Init(&complete);
  complete.MaxWait = settings_.ack_wait_ms + 1000;
  if (js_PublishAsyncComplete(jetstream_, &complete) != NATS_OK) {
    natsMsgList pending{};
    if (js_PublishAsyncGetPendingList(&pending, jetstream_) == NATS_OK) natsMsgList_Destroy(&pending);
    if (last_error_.empty()) last_error_ = "no acknowledgement from JetStream in time";
  }
  std::lock_guard<std::mutex> lock(mutex_);
  std::size_t acknowledged = 0;
  while (acknowledged < sent) {
    auto it = acks_.find(messages[acknowledged].msg_id);
    if (it == acks_.end() || !it->second) break;
    ++acknowledged;
  }
  if (acknowledged < sent) {
    if (last_error_.empty()) last_error_ = "JetStream did not store event " + messages[acknowledged].msg_id;
    stream_checked_ = false;  // perhaps the stream is gone: look again next time
  }
  acks_.clear();
  return acknowledged;
}

std::size_t Link::publish_core(const std::vector<OutgoingMessage>& messages) {
  for (const auto& message : messages) {
    natsMsg* msg = nullptr;
    natsStatus status = natsMsg_Create(&msg, message.subject.c_str(), nullptr, message.payload.data(),
                                       static_cast<int>(message.payload.size()));
    if (status == NATS_OK) status = natsMsgHeader_Set(msg, "Nats-Msg-Id", message.msg_id.c_str());
    if (status == NATS_OK) status = natsConnection_PublishMsg(connection_, msg);
    natsMsg_Destroy(msg);
    if (status != NATS_OK) {
      last_error_ = "publish: " + status_text(status);
      return 0;  // what was buffered may or may not have gone: count nothing as sent
    }
  }
  natsStatus status = natsConnection_FlushTimeout(connection_, settings_.ack_wait_ms);
  if (status != NATS_OK) {
    last_error_ = "flush: " + status_text(status);
    return 0;
  }
  return messages.size();
}

void Link::subscribe(const std::set<std::string>& patterns) {
  threads::SignalsBlocked blocked;
  for (auto it = subscriptions_.begin(); it != subscriptions_.end();) {
    if (patterns.count(it->first)) {
      ++it;
      continue;
    }
    natsSubscription_Unsubscribe(it->second);
    natsSubscription_Destroy(it->second);
    log("unsubscribed from \"" + it->first + "\"");
    it = subscriptions_.erase(it);
  }
  for (const auto& pattern : patterns) {
    if (subscriptions_.count(pattern)) continue;
    natsSubscription* sub = nullptr;
    natsStatus status = natsConnection_QueueSubscribe(&sub, connection_, pattern.c_str(),
                                                      settings_.queue_group.c_str(), Callbacks::message, this);
    if (status != NATS_OK) {
      log("could not subscribe to \"" + pattern + "\": " + status_text(status) + "; trying again later");
      continue;
    }
    subscriptions_[pattern] = sub;
    log("subscribed to \"" + pattern + "\" (queue group \"" + settings_.queue_group + "\")");
  }
}

void Link::reply(const std::string& to, const std::string& body) {
  if (to.empty()) return;
  threads::SignalsBlocked blocked;
  natsConnection_Publish(connection_, to.c_str(), body.data(), static_cast<int>(body.size()));
}

}  // namespace orch::nats
