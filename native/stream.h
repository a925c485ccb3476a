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
  // Adaptive keyframes may run the model on the region around the subject only, when the model takes
  // any input size: where the carried matte is, with a margin of roiMargin times its larger side
  // plus roiTravel times the distance the subject moves between frames (from the last two
  // predictions) for each frame since the last. At least every fullEvery-th run the stream asks
  // for sees the whole frame (a new subject may come in anywhere); so does a run whose region
  // would cost little less than the whole frame's (Engine::cropTo).
  bool roi = false;
  float roiMargin = 0.15f;
  float roiTravel = 1.5f;
  int fullEvery = 4;
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
    // The region (work size) the model may run on; empty: the whole frame.
    cv::Rect roi;
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
  cv::Rect regionOfInterest();
  void trackSubject(const FrameJob& job);
  void releaseHeld(std::vector<Ready>& out);

  TemporalParams params_;
  KeyframePolicy policy_;
  MotionEstimator motion_;
  int motionSince_ = 0;  // motion stage: frames since it last started the model

  std::mutex mu_;  // the matte stage's state, and the end of input
  MatteFilter filter_;
  int since_ = 0;  // frames since the last correction
  int runsSinceFull_ = 0;  // model runs on a region since the last on the whole frame
  // The subject's box in the last prediction (work size) and its velocity between the last two
  // (work pixels per frame): a region's margin grows with it.
  cv::Point2f lastCentre_, velocity_;
  int64_t lastCentreFrame_ = -1;
  std::vector<FrameJob*> held_;
  int64_t submitted_ = 0, stepped_ = 0, last_ = -1;
  bool ending_ = false;
};

}  // namespace bgrm
