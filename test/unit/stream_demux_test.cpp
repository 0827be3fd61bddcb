#include "core/docker/stream_demux.hpp"

#include <algorithm>

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

namespace {

std::string header(Stream stream, std::uint32_t size) {
  std::string out(8, '\0');
  out[0] = static_cast<char>(stream);
  out[4] = static_cast<char>(size >> 24);
  out[5] = static_cast<char>(size >> 16);
  out[6] = static_cast<char>(size >> 8);
  out[7] = static_cast<char>(size);
  return out;
}

}  // namespace

TEST(StreamDemux, AHugeFrameHeaderAllocatesNothing) {
  // A header announcing 4 GiB - 1 bytes: the payload is handed on as it comes, never
  // waited for or buffered; what the capture keeps stays within its caps.
  OutputCapture capture(1000, 100);
  StreamDemux d;
  std::size_t pieces = 0, largest = 0;
  auto sink = [&](Stream s, std::string_view b) {
    ++pieces;
    largest = std::max(largest, b.size());
    capture.add(s, b);
  };
  d.feed(header(Stream::out, 0xFFFFFFFFu) + "{\"a\":", sink);
  EXPECT_EQ(capture.output(), "{\"a\":");
  EXPECT_TRUE(d.truncated());
  std::string piece(64 << 10, 'x');
  for (int i = 0; i < 160; ++i) d.feed(piece, sink);  // 10 MiB of the frame
  EXPECT_LE(largest, piece.size());  // no piece is larger than what was fed
  EXPECT_TRUE(capture.output_too_large());
  EXPECT_EQ(capture.output().size(), 1001u);
  EXPECT_EQ(capture.output_bytes_seen(), 5u + 160 * piece.size());
  EXPECT_LE(capture.held_bytes(), 1001u + capture.log_buffer_limit() + 32);
  EXPECT_TRUE(d.truncated());
}

TEST(StreamDemux, AHugeStderrFrameKeepsOnlyTheTail) {
  OutputCapture capture(1000, 100);
  StreamDemux d;
  auto sink = [&](Stream s, std::string_view b) { capture.add(s, b); };
  d.feed(header(Stream::err, 3u << 20), sink);
  std::string piece(64 << 10, 'e');
  for (int i = 0; i < 47; ++i) d.feed(piece, sink);
  d.feed(std::string(piece.size() - 4, 'e') + "tail" + header(Stream::out, 2) + "{}", sink);
  EXPECT_FALSE(d.truncated());
  EXPECT_EQ(capture.output(), "{}");
  EXPECT_EQ(capture.log_tail(), std::string(96, 'e') + "tail");
  EXPECT_LE(capture.held_bytes(), 1001u + capture.log_buffer_limit() + 32);
}

TEST(OutputCapture, MemoryStaysWithinTheCapsHoweverMuchIsWritten) {
  const std::size_t max_output = 1 << 20, max_log = 64 << 10;
  OutputCapture capture(max_output, max_log);
  const std::size_t bound = max_output + 1 + capture.log_buffer_limit() + 32;
  std::string piece(64 << 10, 'x');
  for (int i = 0; i < 1600; ++i) {  // 100 MiB of stdout, as one read buffer after another
    capture.add(Stream::out, piece);
    ASSERT_LE(capture.held_bytes(), bound) << i;
  }
  EXPECT_TRUE(capture.output_too_large());
  EXPECT_EQ(capture.output().size(), max_output + 1);
  // 100 MiB of stderr, in writes of every size from 1 byte to several times the cap.
  std::string expected;
  std::size_t written = 0;
  for (std::size_t size = 1; written < (100u << 20); size = size * 7 % 300007 + 1) {
    std::string write(size, static_cast<char>('a' + written % 26));
    capture.add(Stream::err, write);
    written += size;
    expected = (expected + write).substr((expected.size() + size) > max_log ? expected.size() + size - max_log : 0);
    ASSERT_LE(capture.held_bytes(), bound) << written;
  }
  EXPECT_EQ(capture.log_tail(), expected);
}

TEST(OutputCapture, LogTailMatchesTheLastBytesForAnyWriteSizes) {
  for (std::size_t max_log : {0u, 1u, 7u, 100u}) {
    OutputCapture capture(10, max_log);
    std::string all;
    for (std::size_t i = 0; i < 3000; ++i) {
      std::string write(i * 13 % 257, static_cast<char>('A' + i % 26));
      capture.add(Stream::err, write);
      all += write;
      if (all.size() > 1000) all.erase(0, all.size() - 1000);
      std::string want = all.size() > max_log ? all.substr(all.size() - max_log) : all;
      ASSERT_EQ(capture.log_tail(), want) << max_log << " " << i;
    }
  }
}

TEST(StreamDemux, CountsFrames) {
  // The logs API sends one frame per log entry: adopt_container sizes its stderr tail by it.
  Collected c;
  StreamDemux d;
  std::string all = frame(Stream::out, "a") + frame(Stream::out, "") + frame(Stream::out, "bc");
  for (char byte : all) d.feed(std::string_view(&byte, 1), c.sink());
  EXPECT_EQ(d.frames(), 3u);
  EXPECT_EQ(c.out, "abc");
}
