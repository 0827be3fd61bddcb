#include "core/docker/stream_demux.hpp"

#include <gtest/gtest.h>

#include "core/common/user_error.hpp"

using namespace orch::docker;

namespace {

std::string frame(Stream stream, const std::string& payload) {
  std::string out(8, '\0');
  out[0] = static_cast<char>(stream);
  auto n = static_cast<std::uint32_t>(payload.size());
  out[4] = static_cast<char>(n >> 24);
  out[5] = static_cast<char>(n >> 16);
  out[6] = static_cast<char>(n >> 8);
  out[7] = static_cast<char>(n);
  return out + payload;
}

struct Collected {
  std::string out, err;
  StreamDemux::Sink sink() {
    return [this](Stream s, std::string_view b) { (s == Stream::out ? out : err).append(b); };
  }
};

}  // namespace

TEST(StreamDemux, WholeFrames) {
  Collected c;
  StreamDemux d;
  d.feed(frame(Stream::out, "{\"ok\":") + frame(Stream::err, "log line\n") + frame(Stream::out, "true}"), c.sink());
  EXPECT_EQ(c.out, "{\"ok\":true}");
  EXPECT_EQ(c.err, "log line\n");
  EXPECT_FALSE(d.truncated());
}

TEST(StreamDemux, FramesSplitAcrossReadsAtEveryByte) {
  std::string all = frame(Stream::out, "hello") + frame(Stream::err, "warn") + frame(Stream::out, " world");
  for (std::size_t cut = 0; cut <= all.size(); ++cut) {
    Collected c;
    StreamDemux d;
    d.feed(std::string_view(all).substr(0, cut), c.sink());
    d.feed(std::string_view(all).substr(cut), c.sink());
    EXPECT_EQ(c.out, "hello world") << cut;
    EXPECT_EQ(c.err, "warn") << cut;
    EXPECT_FALSE(d.truncated()) << cut;
  }
  Collected c;  // one byte at a time
  StreamDemux d;
  for (char byte : all) d.feed(std::string_view(&byte, 1), c.sink());
  EXPECT_EQ(c.out, "hello world");
}

TEST(StreamDemux, ZeroLengthFrames) {
  Collected c;
  StreamDemux d;
  d.feed(frame(Stream::out, "") + frame(Stream::err, "") + frame(Stream::out, "x"), c.sink());
  EXPECT_EQ(c.out, "x");
  EXPECT_EQ(c.err, "");
  EXPECT_FALSE(d.truncated());
}

TEST(StreamDemux, TruncatedFrames) {
  Collected c;
  StreamDemux d;
  d.feed(frame(Stream::out, "abcdef").substr(0, 11), c.sink());  // header and half the payload
  EXPECT_EQ(c.out, "abc");
  EXPECT_TRUE(d.truncated());
  StreamDemux header_only;
  header_only.feed(frame(Stream::out, "abc").substr(0, 5), c.sink());
  EXPECT_TRUE(header_only.truncated());
}

TEST(StreamDemux, BadHeaderIsAnError) {
  Collected c;
  StreamDemux d;
  EXPECT_THROW(d.feed("{\"not\": \"multiplexed\"}", c.sink()), orch::UserError);
}

TEST(OutputCapture, OutputIsKeptToOneBytePastTheLimit) {
  OutputCapture capture(10, 100);
  capture.add(Stream::out, "0123456789");
  EXPECT_FALSE(capture.output_too_large());
  capture.add(Stream::out, "ABCDEFGHIJ");
  EXPECT_TRUE(capture.output_too_large());
  EXPECT_EQ(capture.output(), "0123456789A");
  EXPECT_EQ(capture.output_bytes_seen(), 20u);
}

TEST(OutputCapture, LogKeepsTheTail) {
  OutputCapture capture(10, 8);
  for (int i = 0; i < 10000; ++i) capture.add(Stream::err, "line " + std::to_string(i) + "\n");
  EXPECT_EQ(capture.log_tail(), "ne 9999\n");
  capture.add(Stream::in, "ignored");
  EXPECT_EQ(capture.output(), "");
}
