#include "core/docker/stream_demux.hpp"

#include <algorithm>

#include "core/common/user_error.hpp"

namespace orch::docker {

void StreamDemux::feed(std::string_view bytes, const Sink& sink) {
  while (!bytes.empty()) {
    if (remaining_ == 0) {
      std::size_t take = std::min(bytes.size(), sizeof header_ - header_fill_);
      std::copy_n(bytes.data(), take, header_ + header_fill_);
      header_fill_ += take;
      bytes.remove_prefix(take);
      if (header_fill_ < sizeof header_) return;
      header_fill_ = 0;
      if (header_[0] > 2 || header_[1] || header_[2] || header_[3])
        throw UserError("the container's output stream is not a Docker multiplexed stream "
                        "(bad frame header)");
      stream_ = static_cast<Stream>(header_[0]);
      ++frames_;
      remaining_ = (std::uint32_t{header_[4]} << 24) | (std::uint32_t{header_[5]} << 16) |
                   (std::uint32_t{header_[6]} << 8) | std::uint32_t{header_[7]};
      continue;  // a zero-length frame ends here; the next header follows
    }
    std::size_t take = std::min<std::size_t>(bytes.size(), remaining_);
    sink(stream_, bytes.substr(0, take));
    remaining_ -= static_cast<std::uint32_t>(take);
    bytes.remove_prefix(take);
  }
}

namespace {

// Makes room for `needed` bytes in `text` without letting its capacity pass `limit`
// (`needed` never does): std::string's own growth doubles and could hold twice the cap.
// libstdc++'s reserve() doubles too when asked for less than twice the capacity, so the
// exact size is made in a fresh string (a copy each time the capacity doubles).
void reserve_within(std::string& text, std::size_t needed, std::size_t limit) {
  if (needed <= text.capacity()) return;
  std::string bigger;
  bigger.reserve(std::min(std::max(needed, 2 * text.capacity()), limit));
  bigger.append(text);
  text.swap(bigger);
}

}  // namespace

void OutputCapture::add(Stream stream, std::string_view bytes) {
  if (stream == Stream::out) {
    output_seen_ += bytes.size();
    std::size_t room = max_output_ + 1 - std::min(output_.size(), max_output_ + 1);
    std::size_t take = std::min(room, bytes.size());
    if (take == 0) return;
    reserve_within(output_, output_.size() + take, max_output_ + 1);
    output_.append(bytes.substr(0, take));
  } else if (stream == Stream::err) {
    if (max_log_ == 0) return;
    if (bytes.size() >= max_log_) {  // the write alone is the whole tail
      reserve_within(log_, max_log_, log_buffer_limit());
      log_.assign(bytes.substr(bytes.size() - max_log_));
      return;
    }
    // Keep the tail without moving bytes on every write: trim only when the buffer is full,
    // down to what the tail still needs of it.
    if (log_.size() + bytes.size() > log_buffer_limit()) log_.erase(0, log_.size() - (max_log_ - bytes.size()));
    reserve_within(log_, log_.size() + bytes.size(), log_buffer_limit());
    log_.append(bytes);
  }
}

std::string OutputCapture::log_tail() const {
  return log_.size() > max_log_ ? log_.substr(log_.size() - max_log_) : log_;
}

}  // namespace orch::docker
