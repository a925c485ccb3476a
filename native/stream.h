// A video stream's temporal matting (a camera, a video file): its frames pass two ordered stages.
// The motion stage (as soon as a frame is decoded) finds the flow to the frame before and may start
// the model early; the matte stage (in order, once a frame's prediction is there or not needed)
// carries the matte, decides whether the model must run on this frame (the keyframe policy), and
// corrects. With smoothing (videos read from a file), frames between model runs are held until the
// next run, whose matte is carried back to them too.
#pragma once
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "image.h"
#include "sequencer.h"
#include "temporal.h"

namespace bgrm {

struct FrameJob;

struct KeyframePolicy {
  // 1: the model runs on every frame; K > 1: on every K-th; 0: adaptive (when the matte's edge has
  // become guesswork, at least every maxInterval frames).
  int interval = 1;
  int maxInterval = 4;
  float edgeRisk = 0.25f;  // share of the edge band that may be uncertain
  float uncertain = 3.0f;  // variance (in units of the prediction's) that makes a pixel uncertain
  int bandRadius = 5;      // at work size (half the frame)
  // Hold frames between model runs and smooth them with the next run carried back. At most
  // maxHold frames are held (the caller's frames in flight bound it).
  bool smooth = false;
  int maxHold = 3;
};

// A frame ready to leave the stream, with its alpha (empty for a failed frame).
struct Ready {
  FrameJob* job;
  Image alpha;
};

class TemporalStream {
 public:
  TemporalStream(const TemporalParams& params, const KeyframePolicy& policy);

  // On the JavaScript thread, in submission order: the frame's place in the stream.
  int64_t enqueue();

  // Motion stage (frames in order): the flow to the previous frame; true when the model should run
  // on this frame now, before the matte stage reaches it.
  bool motion(FrameJob* job);  // fixed schedules decide here; adaptive ones in the matte stage
  void motionFailed();

  // Matte stage (frames in order). `needPrediction`: run the model on this frame and deliver it
  // again. Otherwise `ready` lists the frames that may leave (in order; held ones come later).
  struct Step {
    bool needPrediction = false;
    // The model is running on frame after frame (a fast scene): start it on the next frame too,
    // before its turn, so that two model runs overlap. It is used only if it turns out needed.
    bool prefetchNext = false;
    std::vector<Ready> ready;
  };
  Step matte(FrameJob* job);

  // No more frames for now (the end of a file): held frames leave with their forward estimate
  // once the last submitted frame has passed the matte stage.
  std::vector<Ready> flush();

  Sequencer<FrameJob> motionOrder, matteOrder;
  const TemporalParams& params() const { return params_; }
  const KeyframePolicy& policy() const { return policy_; }
  uint64_t lastUse = 0;

 private:
  bool needsPrediction(const FrameJob& job);
  void releaseHeld(std::vector<Ready>& out);

  TemporalParams params_;
  KeyframePolicy policy_;
  MotionEstimator motion_;
  int motionSince_ = 0;  // motion stage: frames since it last started the model

  std::mutex mu_;  // the matte stage's state, and the end of input
  MatteFilter filter_;
  int since_ = 0;  // frames since the last correction
  std::vector<FrameJob*> held_;
  int64_t submitted_ = 0, stepped_ = 0, last_ = -1;
  bool ending_ = false;
};

}  // namespace bgrm
