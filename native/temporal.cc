// Temporal matting: flow both ways between frames, and a per-pixel Kalman filter on the matte.
#include "temporal.h"

#include <algorithm>
#include <cmath>
#include <vector>
#include <opencv2/imgproc.hpp>
#include <opencv2/video/tracking.hpp>

namespace bgrm {

namespace {
constexpr int kBox = 5;  // at half size: about 10x10 pixels of the frame
constexpr int kBoxArea = kBox * kBox;
constexpr float kMeasurementVariance = 1.0f;  // R: the model's prediction, the unit of variance
constexpr float kMaxVariance = 100.0f;        // nothing known: the next prediction is taken whole
constexpr int kTrustLevels = 1024;

cv::Ptr<cv::DISOpticalFlow> makeFlow(int preset) {
  if (preset != kFlowPatch) return cv::DISOpticalFlow::create(std::clamp(preset, 0, 2));
  // Medium's scales and patches, a sparser patch grid, and no variational refinement: the
  // refinement smooths the flow across object edges, which is where a carried matte must not
  // smear, and costs two thirds of the time.
  auto dis = cv::DISOpticalFlow::create(cv::DISOpticalFlow::PRESET_MEDIUM);
  dis->setPatchStride(4);
  dis->setGradientDescentIterations(8);
  dis->setVariationalRefinementIterations(0);
  return dis;
}

cv::Mat pixelGrid(cv::Size size) {
  cv::Mat grid(size, CV_32FC2);
  for (int y = 0; y < size.height; ++y) {
    cv::Vec2f* g = grid.ptr<cv::Vec2f>(y);
    for (int x = 0; x < size.width; ++x) g[x] = cv::Vec2f(float(x), float(y));
  }
  return grid;
}

// How well `flow` (a -> b, on a's grid) agrees with `other` (b -> a, on b's grid): 1 where going
// there and back returns to the start, falling off with the miss (relative to the motion).
cv::Mat consistency(const cv::Mat& flow, const cv::Mat& other, const cv::Mat& grid, float sigma, float relative) {
  cv::Mat there, back;
  cv::add(grid, flow, there);
  cv::remap(other, back, there, cv::noArray(), cv::INTER_LINEAR, cv::BORDER_REPLICATE);
  cv::Mat conf(flow.size(), CV_32F);
  const float inv = 1.0f / sigma;
  for (int y = 0; y < flow.rows; ++y) {
    const cv::Vec2f* f = flow.ptr<cv::Vec2f>(y);
    const cv::Vec2f* b = back.ptr<cv::Vec2f>(y);
    float* c = conf.ptr<float>(y);
    for (int x = 0; x < flow.cols; ++x) {
      const float dx = f[x][0] + b[x][0], dy = f[x][1] + b[x][1];
      const float miss = std::sqrt(dx * dx + dy * dy) / (1.0f + relative * std::sqrt(f[x][0] * f[x][0] + f[x][1] * f[x][1])) * inv;
      c[x] = std::exp(-miss * miss);
    }
  }
  return conf;
}
}  // namespace

struct MotionEstimator::State {
  cv::Ptr<cv::DISOpticalFlow> dis;
  cv::Mat prevHalf;  // CV_8U, half size
  cv::Mat halfGrid;
  int64_t lastFrame = -1;
  std::vector<float> residualTrust;  // exp(-r / residualScale) for every 7x7 sum of 8-bit differences
  std::vector<float> noiseOfTrust;   // q for rho quantised to kTrustLevels
};

MotionEstimator::MotionEstimator(const TemporalParams& params) : params_(params), state_(std::make_unique<State>()) {
  State& s = *state_;
  s.dis = makeFlow(params.flowPreset);
  s.residualTrust.resize(kBoxArea * 255 + 1);
  for (size_t i = 0; i < s.residualTrust.size(); ++i) s.residualTrust[i] = float(std::exp(-(double(i) / kBoxArea) / params.residualScale));
  s.noiseOfTrust.resize(kTrustLevels + 1);
  for (int i = 0; i <= kTrustLevels; ++i) {
    s.noiseOfTrust[i] = float(params.q0 + params.qMax * std::pow(1.0 - double(i) / kTrustLevels, double(params.gamma)));
  }
}

MotionEstimator::~MotionEstimator() = default;

void MotionEstimator::reset() {
  state_->prevHalf.release();
  state_->lastFrame = -1;
}

namespace {
// q of carrying `from` onto `to` along `map`: the 7x7 residual of the warp, and the flow's consistency.
cv::Mat carryNoise(const cv::Mat& from, const cv::Mat& to, const cv::Mat& map, const cv::Mat& halfConsistency,
                   const std::vector<float>& residualTrust, const std::vector<float>& noiseOfTrust, double* meanResidual) {
  cv::Mat warped, diff, boxSum;
  cv::remap(from, warped, map, cv::noArray(), cv::INTER_LINEAR, cv::BORDER_REPLICATE);
  cv::absdiff(to, warped, diff);
  cv::boxFilter(diff, boxSum, CV_16U, cv::Size(kBox, kBox), cv::Point(-1, -1), false);
  if (meanResidual) *meanResidual = cv::mean(diff)[0];
  const cv::Mat& conf = halfConsistency;
  cv::Mat noise(to.size(), CV_32F);
  for (int y = 0; y < to.rows; ++y) {
    const uint16_t* r = boxSum.ptr<uint16_t>(y);
    const float* c = conf.ptr<float>(y);
    float* q = noise.ptr<float>(y);
    for (int x = 0; x < to.cols; ++x) {
      const float rho = residualTrust[r[x]] * std::clamp(c[x], 0.0f, 1.0f);
      q[x] = noiseOfTrust[int(rho * kTrustLevels + 0.5f)];
    }
  }
  return noise;
}
}  // namespace

std::shared_ptr<Motion> MotionEstimator::estimate(const ImageView& rgb, int64_t frameNumber) {
  State& s = *state_;
  auto motion = std::make_shared<Motion>();
  motion->size = workSize(rgb.width, rgb.height);
  const cv::Mat src(rgb.height, rgb.width, CV_8UC3, const_cast<uint8_t*>(rgb.data), rgb.stride());
  cv::Mat small, half;
  cv::resize(src, small, motion->size, 0, 0, cv::INTER_AREA);
  cv::cvtColor(small, half, cv::COLOR_RGB2GRAY);
  const bool carryable = !s.prevHalf.empty() && s.prevHalf.size() == half.size() && frameNumber == s.lastFrame + 1;
  if (carryable) {
    if (s.halfGrid.size() != half.size()) s.halfGrid = pixelGrid(half.size());
    cv::Mat backward, forward;  // this -> previous (on this grid), previous -> this (on the previous grid)
    s.dis->calc(half, s.prevHalf, backward);
    s.dis->calc(s.prevHalf, half, forward);
    cv::add(backward, s.halfGrid, motion->map);
    cv::Mat conf = consistency(backward, forward, s.halfGrid, params_.fbSigma, params_.fbRelative);
    double residual = 0;
    motion->noise = carryNoise(s.prevHalf, half, motion->map, conf, s.residualTrust, s.noiseOfTrust, &residual);
    // A new scene: nothing of the previous frame explains this one.
    motion->fresh = params_.sceneCut > 0 && residual > params_.sceneCut;
    if (!motion->fresh && params_.backward) {
      cv::add(forward, s.halfGrid, motion->backMap);
      // The carry back has the same pixel pairs as the carry forward: the same noise, seen from the
      // previous frame.
      cv::remap(motion->noise, motion->backNoise, motion->backMap, cv::noArray(), cv::INTER_LINEAR, cv::BORDER_REPLICATE);
    }
    if (motion->fresh) {
      const cv::Size size = motion->size;
      *motion = Motion();
      motion->size = size;
    }
  }
  s.prevHalf = half;
  s.lastFrame = frameNumber;
  return motion;
}

cv::Size workSize(int width, int height) { return cv::Size((width + 1) / 2, (height + 1) / 2); }

void MatteFilter::carry(const Motion& motion) {
  if (motion.fresh || est_.matte.empty() || est_.matte.size() != motion.map.size()) {
    reset();
    return;
  }
  cv::Mat matte, variance;
  cv::remap(est_.matte, matte, motion.map, cv::noArray(), cv::INTER_LINEAR, cv::BORDER_REPLICATE);
  cv::remap(est_.variance, variance, motion.map, cv::noArray(), cv::INTER_LINEAR, cv::BORDER_REPLICATE);
  cv::add(variance, motion.noise, variance);
  cv::min(variance, kMaxVariance, variance);
  est_.matte = matte;
  est_.variance = variance;
}

float MatteFilter::edgeRisk(float uncertain, int bandRadius) const {
  if (est_.matte.empty()) return -1;
  cv::Mat fg = est_.matte >= 127.5f;
  const cv::Mat kernel = cv::getStructuringElement(cv::MORPH_RECT, cv::Size(2 * bandRadius + 1, 2 * bandRadius + 1));
  cv::Mat grown, shrunk;
  cv::dilate(fg, grown, kernel);
  cv::erode(fg, shrunk, kernel);
  cv::Mat band = grown & ~shrunk;
  const int edge = cv::countNonZero(band);
  if (edge == 0) return -1;
  cv::Mat unsure = est_.variance > uncertain;
  return float(cv::countNonZero(band & unsure)) / float(edge);
}

void MatteFilter::correct(const Image& prediction) {
  const cv::Mat pred(prediction.height, prediction.width, CV_8UC1, const_cast<uint8_t*>(prediction.pixels.data()));
  if (est_.matte.empty() || est_.matte.size() != pred.size()) {
    pred.convertTo(est_.matte, CV_32F);
    est_.variance = cv::Mat(pred.size(), CV_32F, cv::Scalar(kMeasurementVariance));
    return;
  }
  for (int y = 0; y < pred.rows; ++y) {
    float* m = est_.matte.ptr<float>(y);
    float* v = est_.variance.ptr<float>(y);
    const uint8_t* p = pred.ptr<uint8_t>(y);
    for (int x = 0; x < pred.cols; ++x) {
      const float gain = v[x] / (v[x] + kMeasurementVariance);
      m[x] += gain * (float(p[x]) - m[x]);
      v[x] *= 1.0f - gain;
    }
  }
}

namespace {
// clip((a - 127.5) * c + 127.5), rounding halves up (an even contrast gives halves on whole inputs)
inline uint8_t contrasted(float a, float gain, float offset) {
  const float v = std::floor(a * gain + offset);
  return v <= 0.0f ? 0 : v >= 255.0f ? 255 : uint8_t(v);
}
}  // namespace

Image alphaOf(const cv::Mat& matte, float contrast, int width, int height) {
  cv::Mat full;
  cv::resize(matte, full, cv::Size(width, height), 0, 0, cv::INTER_LINEAR);
  Image out(width, height, 1);
  const float offset = 127.5f * (1.0f - contrast) + 0.5f;
  for (int y = 0; y < height; ++y) {
    const float* m = full.ptr<float>(y);
    uint8_t* o = out.row(y);
    for (int x = 0; x < width; ++x) o[x] = contrasted(m[x], contrast, offset);
  }
  return out;
}

Image smoothedAlpha(const MatteEstimate& forward, MatteEstimate& back, const cv::Mat& backMap, const cv::Mat& backNoise, float contrast, int width, int height) {
  cv::Mat matte, variance;
  cv::remap(back.matte, matte, backMap, cv::noArray(), cv::INTER_LINEAR, cv::BORDER_REPLICATE);
  cv::remap(back.variance, variance, backMap, cv::noArray(), cv::INTER_LINEAR, cv::BORDER_REPLICATE);
  cv::add(variance, backNoise, variance);
  cv::min(variance, kMaxVariance, variance);
  back.matte = matte;
  back.variance = variance;
  // inverse-variance weighting of the two estimates
  cv::Mat blended(matte.size(), CV_32F);
  for (int y = 0; y < matte.rows; ++y) {
    const float* mf = forward.matte.ptr<float>(y);
    const float* vf = forward.variance.ptr<float>(y);
    const float* mb = matte.ptr<float>(y);
    const float* vb = variance.ptr<float>(y);
    float* o = blended.ptr<float>(y);
    for (int x = 0; x < matte.cols; ++x) o[x] = (mf[x] * vb[x] + mb[x] * vf[x]) / (vf[x] + vb[x]);
  }
  return alphaOf(blended, contrast, width, height);
}

}  // namespace bgrm
