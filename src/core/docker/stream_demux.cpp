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

void OutputCapture::add(Stream stream, std::string_view bytes) {
  if (stream == Stream::out) {
    output_seen_ += bytes.size();
    std::size_t room = max_output_ + 1 - std::min(output_.size(), max_output_ + 1);
    output_.append(bytes.substr(0, std::min(room, bytes.size())));
  } else if (stream == Stream::err) {
    log_.append(bytes);
    // Keep the tail without moving bytes on every write: trim only at twice the limit.
    if (log_.size() > 2 * max_log_ + 4096) log_.erase(0, log_.size() - max_log_);
  }
}

std::string OutputCapture::log_tail() const {
  return log_.size() > max_log_ ? log_.substr(log_.size() - max_log_) : log_;
}

}  // namespace orch::docker
