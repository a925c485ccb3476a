// The temporal streams of one segmenter (videos, cameras), by id: made on first use and afresh when
// asked for with other settings; at most kMaxStreams, the least recently used leaving first. A
// stream that is flushed, ended, replaced or evicted hands the frames it holds to `release`.
#pragma once
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "stream.h"

namespace bgrm {

class StreamRegistry {
 public:
  static constexpr size_t kMaxStreams = 64;  // about 6 MB of state each at 854x480

  explicit StreamRegistry(std::function<void(std::vector<Ready>)> release) : release_(std::move(release)) {}

  std::shared_ptr<TemporalStream> get(const std::string& id, const TemporalParams& params, const KeyframePolicy& policy) {
    std::shared_ptr<TemporalStream>& stream = streams_[id];
    if (!stream || stream->policy().interval != policy.interval || stream->params().flowPreset != params.flowPreset ||
        stream->policy().smooth != policy.smooth || stream->policy().maxHold != policy.maxHold) {
      if (stream) release_(stream->flush());
      stream = std::make_shared<TemporalStream>(params, policy);
    }
    stream->lastUse = ++useClock_;
    std::shared_ptr<TemporalStream> out = stream;
    if (streams_.size() > kMaxStreams) evictOldest();
    return out;
  }

  // No more frames for now: frames held for smoothing leave with what is known.
  void flush(const std::string& id) {
    auto it = streams_.find(id);
    if (it != streams_.end()) release_(it->second->flush());
  }

  // Forgets a stream's state (frames in flight keep theirs until they settle).
  void end(const std::string& id) {
    auto it = streams_.find(id);
    if (it == streams_.end()) return;
    release_(it->second->flush());
    streams_.erase(it);
  }

  void flushAll() {
    for (auto& [id, stream] : streams_) release_(stream->flush());
  }
  void clear() { streams_.clear(); }

 private:
  void evictOldest() {
    auto oldest = streams_.begin();
    for (auto it = streams_.begin(); it != streams_.end(); ++it) {
      if (it->second->lastUse < oldest->second->lastUse) oldest = it;
    }
    release_(oldest->second->flush());
    streams_.erase(oldest);
  }

  std::function<void(std::vector<Ready>)> release_;
  std::map<std::string, std::shared_ptr<TemporalStream>> streams_;
  uint64_t useClock_ = 0;
};

}  // namespace bgrm
