// Stage functions and the threads that run them. A frame's stages run in order; different frames
// overlap (one decodes while another is in the model), bounded by how many JavaScript submits.
#include "engine.h"

#include "errors.h"
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

void Engine::fail(FrameJob* job, const std::string& code, const std::string& message) {
  job->errorCode = code;
  job->errorMessage = message;
  job->rgb = Image();
  job->tensor.clear();
  job->alpha = Image();
  job->totalMs = msSince(job->started);
  // A frame of a stream still takes its turn there (the stream resets and moves on), so that the
  // frames after it are not left waiting.
  if (job->stream && !job->arrived) return toStream(job);
  job->done(job);
}

void Engine::toStream(FrameJob* job) {
  job->arrived = true;
  std::shared_ptr<TemporalStream> stream = job->stream;  // alive while its frames run
  stream->arrive(job->seq, job, [this](FrameJob* j) { temporal(j); });
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
      src = ImageView{job->data, job->rawWidth, job->rawHeight, 3};
    } else {
      job->rgb = decodeRgb(job->data, job->size, job->limits);
      src = view(job->rgb);
    }
    auto t1 = Clock::now();
    job->decodeMs = std::chrono::duration<double, std::milli>(t1 - t0).count();
    job->width = src.width;
    job->height = src.height;
    if (job->stream && !job->keyframe) {
      // between keyframes: no model run; the stream carries its matte along the optical flow
      job->resizeMs = 0;
      return finish(job);
    }
    Image small = resizeLanczos(src, segmenter_->inputWidth(), segmenter_->inputHeight());
    job->tensor = segmenter_->prepareInput(small);
    job->resizeMs = msSince(t1);
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
    job->queueMs = std::chrono::duration<double, std::milli>(t0 - job->queuedForInference).count();
    job->mask = segmenter_->infer(job->tensor);
    job->tensor = std::vector<float>();
    job->inferMs = msSince(t0);
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

Image Engine::predict(const ImageView& src, FrameJob* job) {
  auto t0 = Clock::now();
  Image small = resizeLanczos(src, segmenter_->inputWidth(), segmenter_->inputHeight());
  std::vector<float> tensor = segmenter_->prepareInput(small);
  Image mask = segmenter_->infer(tensor);
  job->inferMs += msSince(t0);
  return resizeLanczos(view(mask), src.width, src.height);
}

void Engine::finish(FrameJob* job) {
  try {
    auto t0 = Clock::now();
    const ImageView src = job->raw ? ImageView{job->data, job->rawWidth, job->rawHeight, 3} : view(job->rgb);
    Image alpha;
    if (!job->mask.pixels.empty()) alpha = resizeLanczos(view(job->mask), src.width, src.height);
    job->mask = Image();
    if (job->stream) {
      job->alpha = std::move(alpha);
      job->matteMs = msSince(t0);
      return toStream(job);
    }
    output(job, std::move(alpha), t0);
  } catch (const Error& e) {
    fail(job, e.code(), e.what());
  } catch (const std::exception& e) {
    fail(job, "ERR_INTERNAL", e.what());
  }
}

// A stream's frames, one at a time and in order.
void Engine::temporal(FrameJob* job) {
  if (!job->errorCode.empty()) {
    job->stream->reset();  // the next frame starts the stream afresh
    job->done(job);
    return;
  }
  try {
    auto t0 = Clock::now();
    const ImageView src = job->raw ? ImageView{job->data, job->rawWidth, job->rawHeight, 3} : view(job->rgb);
    bool needPrediction = false;
    Image alpha = job->stream->step(src, job->alpha, job->frameNumber, &needPrediction);
    if (needPrediction) {
      // nothing to carry (first frame, a gap, a scene cut) on a frame between keyframes
      job->alpha = predict(src, job);
      alpha = job->stream->step(src, job->alpha, job->frameNumber, &needPrediction);
    }
    job->alpha = Image();
    // Compositing and encoding need no stream state: they leave the stream's serial section and
    // run on any CPU thread, so one video's frames encode in parallel.
    const double serialMs = job->matteMs + msSince(t0);
    auto a = std::make_shared<Image>(std::move(alpha));
    cpuQueue_.push([this, job, a, serialMs] {
      try {
        output(job, std::move(*a), Clock::now(), serialMs);
      } catch (const Error& e) {
        fail(job, e.code(), e.what());  // the stream's state is not touched: the matte was fine
      } catch (const std::exception& e) {
        fail(job, "ERR_INTERNAL", e.what());
      }
    });
  } catch (const Error& e) {
    job->stream->reset();
    fail(job, e.code(), e.what());
  } catch (const std::exception& e) {
    job->stream->reset();
    fail(job, "ERR_INTERNAL", e.what());
  }
}

void Engine::output(FrameJob* job, Image alpha, Clock::time_point t0, double earlierMatteMs) {
  {
    const ImageView src = job->raw ? ImageView{job->data, job->rawWidth, job->rawHeight, 3} : view(job->rgb);
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
    auto t1 = Clock::now();
    job->matteMs = earlierMatteMs + std::chrono::duration<double, std::milli>(t1 - t0).count();
    job->channels = out.channels;
    if (job->encoding == "raw") {
      job->bytes = std::move(out.pixels);
    } else {
      job->bytes = encodePng(view(out), job->pngLevel, job->pngFilter);
    }
    job->encodeMs = msSince(t1);
    job->totalMs = msSince(job->started);
  }
  job->done(job);
}

}  // namespace bgrm
