// Temporal matting: flow-gated exponential smoothing of the matte along DIS optical flow.
#include "temporal.h"

#include <algorithm>
#include <cmath>
#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>
#include <opencv2/video/tracking.hpp>

namespace bgrm {

struct TemporalStream::State {
  cv::Ptr<cv::DISOpticalFlow> dis;
  cv::Mat prevGrey, prevHalf;  // CV_8U, full and half size
  cv::Mat matte;               // CV_32F, full size, 0..255 (before the contrast curve)
  cv::Mat gridX, gridY;        // CV_32F pixel coordinates, full size
  int64_t lastFrame = -1;
};

TemporalStream::TemporalStream(int keyframeInterval, TemporalParams params)
    : interval_(std::max(1, keyframeInterval)), params_(params), state_(std::make_unique<State>()) {

  state_->dis = cv::DISOpticalFlow::create(cv::DISOpticalFlow::PRESET_MEDIUM);
  // OpenCV's own threads would make DIS's variational refinement order-dependent (parallel SOR
  // stripes), so the same frames could give slightly different mattes. The engine runs frames and
  // streams in parallel already; OpenCV runs single-threaded so that results are repeatable.
  cv::setNumThreads(1);
}

TemporalStream::~TemporalStream() = default;

int64_t TemporalStream::enqueue(bool* keyframe) {
  std::lock_guard<std::mutex> lock(mu_);
  *keyframe = submitted_ % interval_ == 0;
  return submitted_++;
}

void TemporalStream::arrive(int64_t seq, FrameJob* job, const std::function<void(FrameJob*)>& run) {
  std::unique_lock<std::mutex> lock(mu_);
  waiting_[seq] = job;
  if (draining_) return;  // the thread draining now will reach this frame
  draining_ = true;
  for (;;) {
    auto it = waiting_.find(next_);
    if (it == waiting_.end()) break;
    FrameJob* j = it->second;
    waiting_.erase(it);
    ++next_;
    lock.unlock();
    run(j);  // settles the frame; the stream's state is touched by one thread at a time
    lock.lock();
  }
  draining_ = false;
}

void TemporalStream::reset() {
  state_->matte.release();
  state_->prevGrey.release();
  state_->prevHalf.release();
  state_->lastFrame = -1;
}

Image TemporalStream::step(const ImageView& rgb, const Image& prediction, int64_t frameNumber, bool* needPrediction) {
  State& s = *state_;
  *needPrediction = false;
  const cv::Mat src(rgb.height, rgb.width, CV_8UC3, const_cast<uint8_t*>(rgb.data), rgb.stride());
  cv::Mat grey, half;
  cv::cvtColor(src, grey, cv::COLOR_RGB2GRAY);
  cv::resize(grey, half, cv::Size((rgb.width + 1) / 2, (rgb.height + 1) / 2), 0, 0, cv::INTER_AREA);
  const bool hasPrediction = !prediction.pixels.empty();
  cv::Mat pred;
  if (hasPrediction) {
    cv::Mat(prediction.height, prediction.width, CV_8UC1, const_cast<uint8_t*>(prediction.pixels.data())).convertTo(pred, CV_32F);
  }

  bool fresh = s.matte.empty() || s.matte.size() != grey.size() || frameNumber != s.lastFrame + 1;
  cv::Mat mapX, mapY, gate;
  if (!fresh) {
    if (s.gridX.size() != grey.size()) {
      s.gridX.create(grey.size(), CV_32F);
      s.gridY.create(grey.size(), CV_32F);
      for (int y = 0; y < grey.rows; ++y) {
        float* gx = s.gridX.ptr<float>(y);
        float* gy = s.gridY.ptr<float>(y);
        for (int x = 0; x < grey.cols; ++x) {
          gx[x] = float(x);
          gy[x] = float(y);
        }
      }
    }
    // Flow from the current frame to the previous one: where each pixel was (a backward warp).
    cv::Mat flow, flowFull;
    s.dis->calc(half, s.prevHalf, flow);
    cv::resize(flow, flowFull, grey.size(), 0, 0, cv::INTER_LINEAR);
    cv::Mat xy[2];
    cv::split(flowFull, xy);
    mapX = s.gridX + xy[0] * (double(grey.cols) / half.cols);
    mapY = s.gridY + xy[1] * (double(grey.rows) / half.rows);
    // The gate: how badly the warped previous frame explains this one (occlusions, new content).
    cv::Mat warpedGrey, diff;
    cv::remap(s.prevGrey, warpedGrey, mapX, mapY, cv::INTER_LINEAR, cv::BORDER_REPLICATE);
    cv::absdiff(grey, warpedGrey, diff);
    diff.convertTo(gate, CV_32F);
    cv::blur(gate, gate, cv::Size(7, 7));
    if (cv::mean(gate)[0] > params_.sceneCut) fresh = true;  // a new scene: nothing to carry
  }

  if (fresh) {
    if (!hasPrediction) {
      *needPrediction = true;  // the caller runs the model and calls again
      return Image();
    }
    s.matte = pred.clone();
  } else {
    cv::Mat warped;
    cv::remap(s.matte, warped, mapX, mapY, cv::INTER_LINEAR, cv::BORDER_REPLICATE);
    if (hasPrediction) {
      const bool keyframesOnly = interval_ > 1;
      const float weight = keyframesOnly ? params_.keyWeight : params_.weight;
      const float scale = keyframesOnly ? params_.keyScale : params_.scale;
      cv::Mat w;
      cv::exp(gate * (-1.0 / scale), w);
      w *= weight;
      s.matte = w.mul(warped) + (1.0 - w).mul(pred);
    } else {
      s.matte = warped;
    }
  }
  s.prevGrey = grey;
  s.prevHalf = half;
  s.lastFrame = frameNumber;

  Image out(rgb.width, rgb.height, 1);
  cv::Mat outMat(rgb.height, rgb.width, CV_8UC1, out.pixels.data());
  // convertTo saturates: clip((a - 127.5) * c + 127.5) in one pass
  s.matte.convertTo(outMat, CV_8U, params_.contrast, 127.5 * (1.0 - params_.contrast));
  return out;
}

}  // namespace bgrm
