// Temporal matting for video streams. Per stream (a camera, a video file) the matte is carried from
// frame to frame along dense optical flow (OpenCV's DIS on half-resolution grey frames) and blended
// with the model's prediction only where the warp is trustworthy (an occlusion gate from the warped
// frame's difference), then sharpened by a contrast curve. Without a prediction (a frame between
// keyframes) the warped matte is used as is. A gap in frame numbers, a size change or a scene cut
// resets the stream.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>

#include "image.h"

namespace cv {
class DISOpticalFlow;
}

namespace bgrm {

struct FrameJob;

constexpr int kFlowPatch = 3;

struct TemporalParams {
  // Every frame predicted: s = w * warp(s) + (1 - w) * prediction, w = weight * exp(-r / scale).
  // (The recipe had scale 40 and contrast 3: flicker x0.497 of per-frame on DAVIS, IoU +0.006;
  // scale 50 and contrast 4 measured x0.484, IoU +0.003. See test/integration/temporal.test.ts.)
  float weight = 0.9f, scale = 50.0f;
  // Keyframes only (interval > 1): a lighter hand on the prediction's side.
  float keyWeight = 0.5f, keyScale = 20.0f;
  // a' = clip((a - 127.5) * contrast + 127.5)
  float contrast = 4.0f;
  // Mean gated difference (0-255) above which the frame is a new scene.
  float sceneCut = 40.0f;
  // OpenCV DIS preset: 0 ultrafast, 1 fast, 2 medium; or 3 (kFlowPatch, the default): medium
  // without variational refinement, on a sparser patch grid.
  int flowPreset = kFlowPatch;
};

class TemporalStream {
 public:
  explicit TemporalStream(int keyframeInterval, TemporalParams params = {});
  ~TemporalStream();

  // On the JavaScript thread, in submission order: the frame's place in the stream and whether the
  // model runs on it.
  int64_t enqueue(bool* keyframe);

  // On engine threads: a frame (done or failed) reaches the stream. `run` is called for frames in
  // sequence order, one at a time, by whichever thread holds the next one.
  void arrive(int64_t seq, FrameJob* job, const std::function<void(FrameJob*)>& run);

  // The temporal step (called by `run`, in order). `prediction` is the model's full-size mask or
  // empty; when the stream has no state to carry, *needPrediction is set and nothing changes.
  Image step(const ImageView& rgb, const Image& prediction, int64_t frameNumber, bool* needPrediction);

  // Forget the state (a failed frame, a rewound stream).
  void reset();

  int interval() const { return interval_; }
  int flowPreset() const { return params_.flowPreset; }
  uint64_t lastUse = 0;

 private:
  struct State;
  int interval_;
  TemporalParams params_;
  std::unique_ptr<State> state_;
  std::mutex mu_;
  int64_t submitted_ = 0, next_ = 0;
  bool draining_ = false;
  std::map<int64_t, FrameJob*> waiting_;
};

}  // namespace bgrm
