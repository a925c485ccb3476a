// Temporal matting, the algorithm (ordering and keyframe policy live in stream.h). The matte of a
// video is a per-pixel estimate with a variance, carried from frame to frame along dense optical
// flow and corrected by the model's prediction (a Kalman filter per pixel):
//   carry:   m' = warp(m), v' = warp(v) + q    q = q0 + qMax * (1 - rho)^gamma
//   correct: K = v' / (v' + R), m = m' + K (p - m'), v = (1 - K) v'
// rho (0..1) is how far the carry can be trusted at a pixel: the warped previous frame must explain
// this one (a small 5x5 residual r at half size: exp(-r / residualScale)) and the flow must agree
// with the flow computed the other way (forward-backward consistency). Where the carry is trusted the variance
// stays small and the matte keeps its past (flicker goes); where it is not (occlusion, a fast or
// blurred mover, a wrong flow) the variance grows and the next prediction takes over at once (no lag).
// Between model runs the variance says where the carried matte has become unreliable; the keyframe
// policy reads it along the matte's edge. A contrast curve sharpens the result.
#pragma once
#include <cstdint>
#include <memory>

#include <opencv2/core.hpp>

#include "image.h"

namespace cv {
class DISOpticalFlow;
}

namespace bgrm {

constexpr int kFlowPatch = 3;

struct TemporalParams {
  // OpenCV DIS preset: 0 ultrafast, 1 fast, 2 medium; or 3 (kFlowPatch, the default): medium
  // without variational refinement, on a sparser patch grid.
  int flowPreset = kFlowPatch;
  // Process noise of one carry, in units of the prediction's own variance R = 1. q0 sets how much
  // the matte keeps its past where everything agrees (about 5% new per frame); qMax how quickly an
  // unreliable carry hands over to the model.
  float q0 = 0.003f, qMax = 6.0f, gamma = 2.5f;
  float residualScale = 50.0f;
  // Forward-backward flow disagreement (half-size pixels, relative to the motion) at which the
  // carry's confidence falls to 1/e.
  float fbSigma = 3.0f, fbRelative = 0.05f;
  // a' = clip((a - 127.5) * contrast + 127.5)
  float contrast = 4.0f;
  // Mean residual (0-255) above which the frame is a new scene.
  float sceneCut = 40.0f;
  // Smoothing: also compute the flow's use backwards (carrying the next frame's matte back).
  bool backward = false;
};

// The filter works at half size (the model sees 320x320; its prediction loses nothing there), and
// its alpha is scaled up to the frame.
cv::Size workSize(int width, int height);

// What the motion stage finds between a frame and the one before it (half size).
struct Motion {
  bool fresh = true;  // nothing to carry: the first frame, a gap, a size change, a scene cut
  cv::Size size;      // the work size
  cv::Mat map;        // CV_32FC2: where each pixel of this frame was in the previous one
  cv::Mat noise;      // CV_32F: q of carrying the previous matte along `map`
  // With params.backward: the previous frame's pixels in this frame, and q of that carry.
  cv::Mat backMap, backNoise;
};

// Stage 1, frames in order: dense flow both ways between consecutive frames (grey, half size).
class MotionEstimator {
 public:
  explicit MotionEstimator(const TemporalParams& params);
  ~MotionEstimator();
  std::shared_ptr<Motion> estimate(const ImageView& rgb, int64_t frameNumber);
  void reset();

 private:
  struct State;
  TemporalParams params_;
  std::unique_ptr<State> state_;
};

// The matte and its variance (work size, CV_32F, matte 0..255 before the contrast curve).
struct MatteEstimate {
  cv::Mat matte, variance;
};

// Stage 2, frames in order: carry, judge, correct.
class MatteFilter {
 public:
  explicit MatteFilter(const TemporalParams& params) : params_(params) {}
  bool empty() const { return est_.matte.empty(); }
  // Carries the estimate to this frame (nothing to do for a fresh one, which needs a prediction).
  void carry(const Motion& motion);
  // Share of the matte's edge band (pixels within `bandRadius` of its 50% contour) whose variance is
  // above `uncertain`: how much of the cut-out's outline is guesswork now. -1 when the matte has no
  // edge at all (no subject to follow: one could appear anywhere).
  float edgeRisk(float uncertain, int bandRadius) const;
  // Corrects with the model's prediction at work size (8-bit); a fresh filter starts from it.
  void correct(const Image& prediction);
  const MatteEstimate& estimate() const { return est_; }
  void reset() { est_ = MatteEstimate(); }

 private:
  TemporalParams params_;
  MatteEstimate est_;
};

// The output alpha of an estimate at the frame's size: scaled up, then the contrast curve (halves up).
Image alphaOf(const cv::Mat& matte, float contrast, int width, int height);

// A held frame's alpha from its forward estimate and the next keyframe's estimate carried back to it
// (inverse-variance weighted). `back` is updated in place to the carried estimate.
Image smoothedAlpha(const MatteEstimate& forward, MatteEstimate& back, const cv::Mat& backMap, const cv::Mat& backNoise, float contrast, int width,
                    int height);

}  // namespace bgrm
