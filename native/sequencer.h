// Frames of one stream, in order: whichever engine thread holds the next frame runs its step, one
// frame at a time, and then the frames waiting behind it. A step may keep its frame's turn (return
// false): the sequence then waits until that frame is delivered again.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>

namespace bgrm {

template <typename Item>
class Sequencer {
 public:
  void deliver(int64_t seq, Item* item, const std::function<bool(Item*)>& step) {
    std::unique_lock<std::mutex> lock(mu_);
    waiting_[seq] = item;
    if (running_) return;  // the thread running steps now will reach this one
    running_ = true;
    for (;;) {
      auto it = waiting_.find(next_);
      if (it == waiting_.end()) break;
      Item* current = it->second;
      waiting_.erase(it);
      lock.unlock();
      const bool advance = step(current);
      lock.lock();
      // A kept turn: the frame comes back later (maybe already, from another thread, while this
      // step ran), and the loop runs it once it is there.
      if (advance) ++next_;
    }
    running_ = false;
  }

  // The frame waiting for turn `seq`, if it has been delivered (it stays there until its turn).
  Item* peek(int64_t seq) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = waiting_.find(seq);
    return it == waiting_.end() ? nullptr : it->second;
  }

 private:
  std::mutex mu_;
  std::map<int64_t, Item*> waiting_;
  int64_t next_ = 0;
  bool running_ = false;
};

}  // namespace bgrm
