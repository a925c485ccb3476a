// Stage functions and the threads that run them. A frame's stages run in order; different frames
// overlap (one decodes while another is in the model), bounded by how many JavaScript submits.
#include "engine.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "errors.h"
#include "formats.h"
#include "matte.h"
#include "resample.h"

namespace bgrm {
namespace {

using Clock = std::chrono::steady_clock;

double msSince(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

}  // namespace

void WorkQueue::push(std::function<void()> task) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    tasks_.push_back(std::move(task));
  }
  cv_.notify_one();
}

bool WorkQueue::pop(std::function<void()>& task) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [this] { return closed_ || !tasks_.empty(); });
  if (tasks_.empty()) return false;
  task = std::move(tasks_.front());
  tasks_.pop_front();
  return true;
}

void WorkQueue::close() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = true;
  }
  cv_.notify_all();
}

Engine::Engine(std::shared_ptr<Segmenter> segmenter, int cpuThreads, int inferenceThreads)
    : segmenter_(std::move(segmenter)) {
  auto loop = [](WorkQueue* q) {
    std::function<void()> task;
    while (q->pop(task)) task();
  };
  for (int i = 0; i < std::max(1, cpuThreads); ++i) threads_.emplace_back(loop, &cpuQueue_);
  for (int i = 0; i < std::max(1, inferenceThreads); ++i) threads_.emplace_back(loop, &inferQueue_);
}

Engine::~Engine() { stop(); }

void Engine::stop() {
  if (stopped_) return;
  stopped_ = true;
  // Inference feeds the CPU queue, so close it first and let the CPU threads drain after it.
  inferQueue_.close();
  cpuQueue_.close();
  for (auto& t : threads_) t.join();
  threads_.clear();
}

void Engine::submit(FrameJob* job) {
  job->started = Clock::now();
  cpuQueue_.push([this, job] { prepare(job); });
}

namespace {
void markFailed(FrameJob* job, const std::string& code, const std::string& message) {
  job->errorCode = code;
  job->errorMessage = message;
  job->rgb = Image();
  job->tensor.clear();
  job->alpha = Image();
  job->totalMs = msSince(job->started);
}
}  // namespace

void Engine::fail(FrameJob* job, const std::string& code, const std::string& message) {
  markFailed(job, code, message);
  job->predicting = false;
  // A frame of a stream still takes its turn in the stream's stages (which reset and move on), so
  // that the frames after it are not left waiting.
  if (job->stream && !job->passedMotion) return toMotion(job);
  if (job->stream && !job->passedMatte) return toMatte(job);
  job->done(job);
}

void Engine::prepare(FrameJob* job) {
  try {
    auto t0 = Clock::now();
    ImageView src;
    if (job->raw) {
      if (job->rawWidth <= 0 || job->rawHeight <= 0 ||
          size_t(job->rawWidth) * job->rawHeight * 3 != job->size) {
        throw Error("ERR_INVALID_ARGUMENT", "raw frame size does not match width x height x 3");
      }
      if (int64_t(job->rawWidth) * job->rawHeight > job->limits.maxPixels) {
        throw Error("ERR_IMAGE_TOO_LARGE", "raw frame is over the pixel limit");
      }
    } else {
      job->rgb = decodeRgb(job->data, job->size, job->limits);
    }
    src = job->source();
    job->decodeMs = msSince(t0);
    job->width = src.width;
    job->height = src.height;
  } catch (const Error& e) {
    return fail(job, e.code(), e.what());
  } catch (const std::exception& e) {
    return fail(job, "ERR_INTERNAL", e.what());
  }
  if (job->stream) return toMotion(job);  // the stream decides whether the model runs
  predict(job);
}

void Engine::startPrediction(FrameJob* job) {
  job->predicting = true;
  cpuQueue_.push([this, job] { predict(job); });
}

namespace {
int roundUp(int v, int to) { return (v + to - 1) / to * to; }

// A region's model input is at least this long on its longer side: on smaller inputs U-2-Net lost
// the subject's outline (a duck on grass, 128x160: half of it), measured on davis-fast.
constexpr double kMinRegionSide = 192;

// A copy of part of an image.
Image cropOf(const ImageView& src, const cv::Rect& r) {
  Image out(r.width, r.height, src.channels);
  for (int y = 0; y < r.height; ++y) std::memcpy(out.row(y), src.data + size_t(r.y + y) * src.stride() + size_t(r.x) * src.channels, out.stride());
  return out;
}
}  // namespace

// The region a stream asked for (work size, half the frame) as a crop of the frame the model sees at
// the density it sees the whole frame with, its input a multiple of 32 each way; none where that
// saves little.
void Engine::cropTo(FrameJob* job, const cv::Rect& workRoi) {
  job->crop = cv::Rect();
  job->inputWidth = job->inputHeight = 0;
  if (workRoi.empty() || !segmenter_->freeInputSize()) return;
  const int W = job->width, H = job->height, mw = segmenter_->inputWidth(), mh = segmenter_->inputHeight();
  // model pixels per frame pixel: the whole frame's density, raised for a small region (the model
  // needs enough input to see the subject in its context)
  const double natural = std::max(workRoi.width * 2.0 * mw / W, workRoi.height * 2.0 * mh / H);
  const double scale = std::max(1.0, kMinRegionSide / natural);
  const double dx = scale * mw / W, dy = scale * mh / H;
  const int iw = std::clamp(roundUp(int(std::ceil(workRoi.width * 2 * dx)), 32), 96, roundUp(mw, 32));
  const int ih = std::clamp(roundUp(int(std::ceil(workRoi.height * 2 * dy)), 32), 96, roundUp(mh, 32));
  if (double(iw) * ih > 0.7 * mw * mh) return;  // little to save: the whole frame
  // the crop that maps to iw x ih at that density, even-aligned (work pixels), centred on the region
  const int cw = std::min(W & ~1, int(std::lround(iw / dx / 2)) * 2), ch = std::min(H & ~1, int(std::lround(ih / dy / 2)) * 2);
  const int cx = 2 * workRoi.x + workRoi.width, cy = 2 * workRoi.y + workRoi.height;  // centre, frame pixels
  const int x = std::clamp((cx - cw / 2) & ~1, 0, (W - cw) & ~1), y = std::clamp((cy - ch / 2) & ~1, 0, (H - ch) & ~1);
  job->crop = cv::Rect(x, y, cw, ch);
  job->inputWidth = iw;
  job->inputHeight = ih;
}

void Engine::predict(FrameJob* job) {
  try {
    auto t0 = Clock::now();
    Image small;
    if (job->crop.empty()) {
      small = resizeLanczos(job->source(), segmenter_->inputWidth(), segmenter_->inputHeight());
    } else {
      small = resizeLanczos(view(cropOf(job->source(), job->crop)), job->inputWidth, job->inputHeight);
    }
    job->tensor = segmenter_->prepareInput(small);
    job->resizeMs += msSince(t0);
    job->queuedForInference = Clock::now();
    inferQueue_.push([this, job] { infer(job); });
  } catch (const Error& e) {
    fail(job, e.code(), e.what());
  } catch (const std::exception& e) {
    fail(job, "ERR_INTERNAL", e.what());
  }
}

void Engine::infer(FrameJob* job) {
  try {
    auto t0 = Clock::now();
    job->queueMs += std::chrono::duration<double, std::milli>(t0 - job->queuedForInference).count();
    job->mask = segmenter_->infer(job->tensor, job->inputWidth, job->inputHeight);
    job->modelRuns++;
    if (!job->crop.empty()) job->regionRuns++;
    job->tensor = std::vector<float>();
    job->inferMs += msSince(t0);
    cpuQueue_.push([this, job] { finish(job); });
  } catch (const Error& e) {
    fail(job, e.code(), e.what());
  } catch (const std::exception& e) {
    fail(job, "ERR_INTERNAL", e.what());
  }
}

std::shared_ptr<const Image> Engine::backgroundFor(const ImageView& bg, int width, int height) {
  const auto key = std::make_tuple(bg.data, bg.width, bg.height, width, height);
  {
    std::lock_guard<std::mutex> lock(bgMu_);
    auto it = bgCache_.find(key);
    if (it != bgCache_.end()) return it->second;
  }
  auto img = std::make_shared<const Image>(coverResize(bg, width, height));
  std::lock_guard<std::mutex> lock(bgMu_);
  if (bgCache_.size() > 8) bgCache_.clear();  // frames of a stream share one size; keep this small
  bgCache_[key] = img;
  return img;
}

void Engine::finish(FrameJob* job) {
  try {
    auto t0 = Clock::now();
    const ImageView src = job->source();
    // a stream's matte is kept at half size (temporal.h); a photo's alpha at the photo's
    const cv::Size size = job->stream ? workSize(src.width, src.height) : cv::Size(src.width, src.height);
    Image alpha;
    if (job->crop.empty()) {
      alpha = resizeLanczos(view(job->mask), size.width, size.height);
    } else {
      // a region's prediction; the rest of the frame is background
      const cv::Rect r(job->crop.x / 2, job->crop.y / 2, job->crop.width / 2, job->crop.height / 2);
      const Image part = resizeLanczos(view(job->mask), r.width, r.height);
      alpha = Image(size.width, size.height, 1);
      for (int y = 0; y < r.height; ++y) std::memcpy(alpha.row(r.y + y) + r.x, part.row(y), size_t(r.width));
    }
    job->mask = Image();
    if (job->stream) {
      job->alpha = std::move(alpha);
      job->matteMs += msSince(t0);
      job->predicting = false;
      return toMatte(job);
    }
    output(job, std::move(alpha), t0);
  } catch (const Error& e) {
    fail(job, e.code(), e.what());
  } catch (const std::exception& e) {
    fail(job, "ERR_INTERNAL", e.what());
  }
}

// A stream's motion stage, frames in order: the flow to the frame before; the model may start now.
void Engine::toMotion(FrameJob* job) {
  std::shared_ptr<TemporalStream> stream = job->stream;  // alive while its frames run
  stream->motionOrder.deliver(job->seq, job, [this](FrameJob* j) {
    j->passedMotion = true;
    if (!j->errorCode.empty()) {
      j->stream->motionFailed();
      toMatte(j);
      return true;
    }
    bool early = false;
    try {
      auto t0 = Clock::now();
      early = j->stream->motion(j);
      j->matteMs += msSince(t0);
    } catch (const Error& e) {
      j->stream->motionFailed();
      fail(j, e.code(), e.what());
      return true;
    } catch (const std::exception& e) {
      j->stream->motionFailed();
      fail(j, "ERR_INTERNAL", e.what());
      return true;
    }
    if (early) startPrediction(j);
    else toMatte(j);
    return true;
  });
}

// A stream's matte stage, frames in order.
void Engine::toMatte(FrameJob* job) {
  std::shared_ptr<TemporalStream> stream = job->stream;
  stream->matteOrder.deliver(job->seq, job, [this](FrameJob* j) { return matte(j); });
}

bool Engine::matte(FrameJob* job) {
  if (job->predicting) return false;  // started before its turn: it comes back when the model is done
  TemporalStream::Step step;
  auto t0 = Clock::now();
  try {
    step = job->stream->matte(job);
  } catch (const Error& e) {
    markFailed(job, e.code(), e.what());
    step = job->stream->matte(job);  // as a failed frame: the held frames leave, the stream resets
  } catch (const std::exception& e) {
    markFailed(job, "ERR_INTERNAL", e.what());
    step = job->stream->matte(job);
  }
  job->matteMs += msSince(t0);
  if (step.needPrediction) {
    // the model runs on this frame now; the stream waits for it
    cropTo(job, step.roi);
    startPrediction(job);
    if (step.prefetchNext) {
      FrameJob* next = job->stream->matteOrder.peek(job->seq + 1);
      if (next && !next->predicting && next->alpha.pixels.empty() && next->errorCode.empty()) {
        cropTo(next, step.roi);
        startPrediction(next);
      }
    }
    return false;
  }
  job->passedMatte = true;
  release(std::move(step.ready));
  return true;
}

void Engine::release(std::vector<Ready> ready) {
  for (Ready& r : ready) {
    FrameJob* j = r.job;
    j->passedMotion = j->passedMatte = true;
    if (!j->errorCode.empty()) {
      j->done(j);
      continue;
    }
    // Compositing and encoding need no stream state: they run on any CPU thread, so one video's
    // frames encode in parallel.
    auto alpha = std::make_shared<Image>(std::move(r.alpha));
    cpuQueue_.push([this, j, alpha] {
      try {
        output(j, std::move(*alpha), Clock::now());
      } catch (const Error& e) {
        fail(j, e.code(), e.what());
      } catch (const std::exception& e) {
        fail(j, "ERR_INTERNAL", e.what());
      }
    });
  }
}

void Engine::output(FrameJob* job, Image alpha, Clock::time_point t0) {
  {
    const ImageView src = job->source();
    Image out;
    if (job->output == "mask") {
      out = std::move(alpha);
    } else if (job->background.width > 0) {
      auto bg = backgroundFor(job->background, src.width, src.height);
      out = compositeOnImage(src, alpha, view(*bg));
    } else if (job->hasColor) {
      out = compositeOnColor(src, alpha, job->color);
    } else {
      out = cutout(src, alpha);
    }
    job->rgb = Image();
    job->motion.reset();
    auto t1 = Clock::now();
    job->matteMs += std::chrono::duration<double, std::milli>(t1 - t0).count();
    job->channels = out.channels;
    if (job->encoding == "raw") {
      job->bytes = std::move(out.pixels);
    } else if (job->encoding == "webp") {
      job->bytes = encodeWebp(view(out), job->quality);
    } else if (job->encoding == "jpeg") {
      if (out.channels == 4) throw Error("ERR_USAGE", "JPEG has no alpha channel: composite on a background (--background) or choose PNG or WebP");
      job->bytes = encodeJpeg(view(out), job->quality > 0 ? job->quality : 90);
    } else {
      job->bytes = encodePng(view(out), job->pngLevel, job->pngFilter);
    }
    job->encodeMs = msSince(t1);
    job->totalMs = msSince(job->started);
  }
  job->done(job);
}

}  // namespace bgrm
