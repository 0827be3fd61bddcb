// A small NATS client for the event tests (Debian's nats-server has no `nats` CLI beside it).
//
//   nats_probe read URL STREAM FILTER [IDLE_MS]   every message of the stream on FILTER, in
//                                                 stream order, one JSON line each:
//                                                 {"seq", "msg_id", "subject", "event"}; stops
//                                                 after IDLE_MS (default 2000) without one
//   nats_probe request URL SUBJECT DATA [MS]      sends a request, prints the reply
//   nats_probe publish URL SUBJECT DATA           publishes (and flushes)
//   nats_probe purge URL STREAM                   empties a stream (absent: nothing to do)
#include <nats/nats.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>

#include <nlohmann/json.hpp>

namespace {

[[noreturn]] void fail(const std::string& what, natsStatus status) {
  std::cerr << "nats_probe: " << what << ": " << natsStatus_GetText(status) << " " << nats_GetLastError(nullptr)
            << "\n";
  std::exit(2);
}

natsConnection* connect(const char* url) {
  natsConnection* nc = nullptr;
  natsStatus s = natsConnection_ConnectTo(&nc, url);
  if (s != NATS_OK) fail(std::string("connect ") + url, s);
  return nc;
}

int read_stream(natsConnection* nc, const char* stream, const char* filter, int idle_ms) {
  jsCtx* js = nullptr;
  if (natsStatus s = natsConnection_JetStream(&js, nc, nullptr); s != NATS_OK) fail("JetStream", s);
  jsSubOptions options;
  jsSubOptions_Init(&options);
  options.Stream = stream;
  options.Ordered = true;  // ephemeral, flow-controlled, from the first message
  options.Config.DeliverPolicy = js_DeliverAll;
  natsSubscription* sub = nullptr;
  jsErrCode code;
  if (natsStatus s = js_SubscribeSync(&sub, js, filter, nullptr, &options, &code); s != NATS_OK)
    fail(std::string("subscribe to stream ") + stream, s);
  for (;;) {
    natsMsg* msg = nullptr;
    natsStatus s = natsSubscription_NextMsg(&msg, sub, idle_ms);
    if (s == NATS_TIMEOUT) break;
    if (s != NATS_OK) fail("next message", s);
    jsMsgMetaData* meta = nullptr;
    nlohmann::json line;
    if (natsMsg_GetMetaData(&meta, msg) == NATS_OK) {
      line["seq"] = meta->Sequence.Stream;
      jsMsgMetaData_Destroy(meta);
    }
    const char* id = nullptr;
    line["msg_id"] = natsMsgHeader_Get(msg, "Nats-Msg-Id", &id) == NATS_OK && id ? id : "";
    line["subject"] = natsMsg_GetSubject(msg);
    std::string data(natsMsg_GetData(msg), static_cast<std::size_t>(natsMsg_GetDataLength(msg)));
    nlohmann::json event = nlohmann::json::parse(data, nullptr, false);
    line["event"] = event.is_discarded() ? nlohmann::json(data) : event;
    std::cout << line.dump() << "\n";
    natsMsg_Destroy(msg);
  }
  natsSubscription_Destroy(sub);
  jsCtx_Destroy(js);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    std::cerr << "usage: nats_probe read|request|publish|purge URL ...\n";
    return 2;
  }
  std::string command = argv[1];
  natsConnection* nc = connect(argv[2]);
  int rc = 0;
  if (command == "read") {
    rc = read_stream(nc, argv[3], argc > 4 ? argv[4] : ">", argc > 5 ? std::atoi(argv[5]) : 2000);
  } else if (command == "request" && argc >= 5) {
    natsMsg* reply = nullptr;
    natsStatus s = natsConnection_RequestString(&reply, nc, argv[3], argv[4], argc > 5 ? std::atoi(argv[5]) : 5000);
    if (s != NATS_OK) fail(std::string("request on ") + argv[3], s);
    std::cout << std::string(natsMsg_GetData(reply), static_cast<std::size_t>(natsMsg_GetDataLength(reply))) << "\n";
    natsMsg_Destroy(reply);
  } else if (command == "publish" && argc >= 5) {
    if (natsStatus s = natsConnection_PublishString(nc, argv[3], argv[4]); s != NATS_OK) fail("publish", s);
    if (natsStatus s = natsConnection_FlushTimeout(nc, 5000); s != NATS_OK) fail("flush", s);
  } else if (command == "purge") {
    jsCtx* js = nullptr;
    if (natsStatus s = natsConnection_JetStream(&js, nc, nullptr); s != NATS_OK) fail("JetStream", s);
    jsErrCode code;
    natsStatus s = js_PurgeStream(js, argv[3], nullptr, &code);
    if (s != NATS_OK && code != JSStreamNotFoundErr) fail(std::string("purge ") + argv[3], s);
    jsCtx_Destroy(js);
  } else {
    std::cerr << "nats_probe: unknown command or missing arguments\n";
    rc = 2;
  }
  natsConnection_Destroy(nc);
  return rc;
}
