// A stream's two ordered stages, its keyframe policy, and the frames it holds for smoothing.
#include "stream.h"

#include <algorithm>

#include <opencv2/imgproc.hpp>

#include "engine.h"

namespace bgrm {

namespace {
TemporalParams withBackward(TemporalParams p, bool smooth) {
  p.backward = smooth;  // smoothing carries mattes back: the motion stage measures that way too
  return p;
}
}  // namespace

TemporalStream::TemporalStream(const TemporalParams& params, const KeyframePolicy& policy)
    : params_(withBackward(params, policy.smooth)), policy_(policy), motion_(params_), filter_(params_) {}

int64_t TemporalStream::enqueue() {
  std::lock_guard<std::mutex> lock(mu_);
  ending_ = false;  // more frames: an earlier flush is over
  return submitted_++;
}

bool TemporalStream::motion(FrameJob* job) {
  const ImageView src = job->source();
  job->motion = motion_.estimate(src, job->frameNumber);
  // Fixed schedules are known here (the matte stage follows them); adaptive keyframes are decided
  // in the matte stage, which needs the matte of the frame before.
  bool early;
  if (job->motion->fresh || policy_.interval == 1) early = true;
  else if (policy_.interval > 1) early = motionSince_ + 1 >= policy_.interval;
  else early = false;
  motionSince_ = early ? 0 : motionSince_ + 1;
  job->scheduled = early;
  return early;
}

void TemporalStream::motionFailed() {
  motion_.reset();
  motionSince_ = 0;
}

bool TemporalStream::needsPrediction(const FrameJob& job) {
  if (filter_.empty()) return true;  // nothing carried: a first frame, a gap, a new scene
  if (policy_.interval >= 1) return job.scheduled;
  if (since_ + 1 >= policy_.maxInterval) return true;
  if (policy_.smooth && int(held_.size()) >= policy_.maxHold) return true;
  // no subject (no edge): only the schedule's bound (measured: checking more often cost IoU)
  return filter_.edgeRisk(policy_.uncertain, policy_.bandRadius) > policy_.edgeRisk;
}

cv::Rect TemporalStream::regionOfInterest() {
  if (!policy_.roi || policy_.interval != 0 || filter_.empty()) return {};
  if (runsSinceFull_ + 1 >= policy_.fullEvery) return {};
  const cv::Mat& matte = filter_.estimate().matte;
  // where the carried matte says the subject is (soft edges included)
  cv::Mat fg = matte >= 32.0f;
  const cv::Rect box = cv::boundingRect(fg);
  if (box.empty()) return {};
  // room for the subject's size, and for how far it may have gone since the model last saw it
  const float travel = policy_.roiTravel * std::hypot(velocity_.x, velocity_.y) * float(since_ + 1);
  const int margin = std::max(8, int(policy_.roiMargin * std::max(box.width, box.height))) + int(travel);
  const cv::Rect grown(box.x - margin, box.y - margin, box.width + 2 * margin, box.height + 2 * margin);
  return grown & cv::Rect(0, 0, matte.cols, matte.rows);
}

void TemporalStream::trackSubject(const FrameJob& job) {
  const cv::Mat pred(job.alpha.height, job.alpha.width, CV_8UC1, const_cast<uint8_t*>(job.alpha.pixels.data()));
  const cv::Rect box = cv::boundingRect(pred >= 128);
  if (box.empty()) {
    lastCentreFrame_ = -1;
    velocity_ = {};
    return;
  }
  const cv::Point2f centre(box.x + box.width * 0.5f, box.y + box.height * 0.5f);
  if (lastCentreFrame_ >= 0 && job.frameNumber > lastCentreFrame_) velocity_ = (centre - lastCentre_) / float(job.frameNumber - lastCentreFrame_);
  lastCentre_ = centre;
  lastCentreFrame_ = job.frameNumber;
}

void TemporalStream::releaseHeld(std::vector<Ready>& out) {
  for (FrameJob* h : held_) {
    out.push_back({h, alphaOf(h->forward.matte, params_.contrast, h->width, h->height)});
    h->forward = MatteEstimate();
  }
  held_.clear();
}

TemporalStream::Step TemporalStream::matte(FrameJob* job) {
  Step step;
  std::lock_guard<std::mutex> lock(mu_);
  if (!job->errorCode.empty()) {
    // A failed frame takes its turn: the frames before it leave as they are, the next starts afresh.
    releaseHeld(step.ready);
    filter_.reset();
    since_ = 0;
    runsSinceFull_ = 0;
    lastCentreFrame_ = -1;
    velocity_ = {};
    step.ready.push_back({job, Image()});
    stepped_ = job->seq + 1;
    return step;
  }
  if (!job->carried) {
    filter_.carry(*job->motion);
    job->carried = true;
    job->motion->map.release();  // only the carry back is still needed (smoothing)
    job->motion->noise.release();
  }
  const bool need = needsPrediction(*job);
  bool predicted = !job->alpha.pixels.empty();
  if (need && !predicted) {
    step.needPrediction = true;
    step.prefetchNext = policy_.interval == 0 && since_ == 0;
    step.roi = regionOfInterest();
    runsSinceFull_ = step.roi.empty() ? 0 : runsSinceFull_ + 1;
    return step;
  }
  // A prediction started early but not needed is left out: measured, corrections the policy did not
  // ask for (on frames the flow found hard) made the matte worse, not better.
  if (predicted && !need) predicted = false;
  if (predicted) {
    filter_.correct(job->alpha);
    since_ = 0;
    trackSubject(*job);
  } else {
    ++since_;
  }
  job->alpha = Image();
  stepped_ = job->seq + 1;
  const bool last = ending_ && job->seq == last_;
  if (policy_.smooth && !predicted && !last) {
    // A fixed schedule longer than the frames in flight: the oldest held frame leaves with what was
    // carried forward to it (adaptive keyframes run the model before this happens).
    if (int(held_.size()) >= policy_.maxHold) {
      FrameJob* oldest = held_.front();
      step.ready.push_back({oldest, alphaOf(oldest->forward.matte, params_.contrast, oldest->width, oldest->height)});
      oldest->forward = MatteEstimate();
      held_.erase(held_.begin());
    }
    job->forward = {filter_.estimate().matte.clone(), filter_.estimate().variance.clone()};
    held_.push_back(job);
    return step;
  }
  if (predicted && !held_.empty()) {
    // The matte of this model run, carried back to each held frame (from the frame after it),
    // blended with what was carried forward to it.
    MatteEstimate back{filter_.estimate().matte.clone(), filter_.estimate().variance.clone()};
    std::vector<Image> alphas(held_.size());
    const FrameJob* after = job;
    for (size_t i = held_.size(); i-- > 0;) {
      alphas[i] = smoothedAlpha(held_[i]->forward, back, after->motion->backMap, after->motion->backNoise, params_.contrast, held_[i]->width,
                                held_[i]->height);
      after = held_[i];
    }
    for (size_t i = 0; i < held_.size(); ++i) {
      held_[i]->forward = MatteEstimate();
      step.ready.push_back({held_[i], std::move(alphas[i])});
    }
    held_.clear();
  } else {
    releaseHeld(step.ready);
  }
  step.ready.push_back({job, alphaOf(filter_.estimate().matte, params_.contrast, job->width, job->height)});
  return step;
}

std::vector<Ready> TemporalStream::flush() {
  std::vector<Ready> out;
  std::lock_guard<std::mutex> lock(mu_);
  ending_ = true;
  last_ = submitted_ - 1;
  if (stepped_ > last_) releaseHeld(out);  // else the matte stage releases them at the last frame
  return out;
}

}  // namespace bgrm
