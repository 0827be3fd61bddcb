// Docker's multiplexed stream (attach and logs without a TTY): frames of an 8-byte header
// (stream: 0 stdin, 1 stdout, 2 stderr; three zero bytes; payload size, big-endian 32
// bits) and the payload. Bytes arrive in arbitrary pieces: a header or a payload may be
// split across reads, so the demultiplexer keeps its place between feeds and hands
// payload bytes on as soon as they arrive. It never buffers a payload: a header announcing
// 4 GiB costs nothing until the bytes come, and then they go straight to the sink.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace orch::docker {

enum class Stream : std::uint8_t { in = 0, out = 1, err = 2 };

class StreamDemux {
 public:
  using Sink = std::function<void(Stream, std::string_view)>;

  // Hands every payload byte in `bytes` to `sink`, tagged with its stream. Throws
  // UserError on a header that is not a Docker stream header.
  void feed(std::string_view bytes, const Sink& sink);

  // At end of stream: true if it ended inside a header or a payload (a truncated frame).
  bool truncated() const { return header_fill_ > 0 || remaining_ > 0; }

  // Frame headers read so far: the logs API sends one frame per log entry.
  std::size_t frames() const { return frames_; }

 private:
  unsigned char header_[8] = {};
  std::size_t header_fill_ = 0;  // header bytes read so far
  std::uint32_t remaining_ = 0;  // payload bytes of the current frame still to come
  Stream stream_ = Stream::out;
  std::size_t frames_ = 0;
};

// What an agent wrote: stdout whole up to a limit (an output over it is an error, so the
// first byte past the limit is enough to know, and the reader stops there), stderr as its
// last bytes (a log tail). Memory stays within the limits however much is added: a
// container's output is the attacker's to choose.
class OutputCapture {
 public:
  OutputCapture(std::size_t max_output_bytes, std::size_t max_log_bytes)
      : max_output_(max_output_bytes), max_log_(max_log_bytes) {}

  void add(Stream stream, std::string_view bytes);

  const std::string& output() const { return output_; }  // at most max_output_bytes + 1
  bool output_too_large() const { return output_.size() > max_output_; }
  std::size_t output_bytes_seen() const { return output_seen_; }
  std::string log_tail() const;  // the last max_log_bytes of stderr

  // The bytes of memory the capture holds (capacities, not sizes): never more than
  // max_output_bytes + 1 + log_buffer_limit(), beyond a string's small inline buffer.
  std::size_t held_bytes() const { return output_.capacity() + log_.capacity(); }
  // stderr is kept in a buffer of at most this many bytes and trimmed to its tail only
  // when full, so that a stream of small writes does not move the tail on every write.
  std::size_t log_buffer_limit() const { return 2 * max_log_ + 4096; }

 private:
  std::size_t max_output_, max_log_;
  std::string output_, log_;
  std::size_t output_seen_ = 0;
};

}  // namespace orch::docker
