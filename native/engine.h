// The frame engine: a baton per frame flows through decode/resize -> inference -> matte/encode
// stages on the engine's own threads (never libuv's pool, never the JavaScript thread).
#pragma once
#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "codecs.h"
#include "image.h"
#include "segmenter.h"
#include "stream.h"
#include "temporal.h"

namespace bgrm {

// Everything one frame needs and produces. Input bytes are borrowed: the caller keeps them alive
// until `done` runs.
struct FrameJob {
  // input
  const uint8_t* data = nullptr;
  size_t size = 0;
  bool raw = false;  // data is raw RGB (rawWidth x rawHeight x 3), not an encoded image
  int rawWidth = 0, rawHeight = 0;
  DecodeLimits limits;
  // what to produce
  std::string output = "rgba";  // "rgba" | "mask"
  bool hasColor = false;
  std::array<uint8_t, 3> color{0, 0, 0};
  ImageView background;  // borrowed RGB; width 0 when none
  // Temporal matting: the stream this frame belongs to (null: an unrelated photo), its place in the
  // stream and its frame number (a gap resets the stream).
  std::shared_ptr<TemporalStream> stream;
  int64_t seq = -1;
  int64_t frameNumber = -1;
  std::string encoding = "png";  // "png" | "webp" | "jpeg" | "raw"
  int pngLevel = 1;
  int quality = 0;  // WebP: 0 lossless, 1-100 lossy; JPEG: 1-100 (0: 90)
  std::string pngFilter = "sub";

  // result
  std::vector<uint8_t> bytes;
  int width = 0, height = 0, channels = 0;
  std::string errorCode, errorMessage;
  double decodeMs = 0, resizeMs = 0, queueMs = 0, inferMs = 0, matteMs = 0, encodeMs = 0, totalMs = 0;

  // between stages
  Image rgb;
  std::vector<float> tensor;
  // The part of the frame the model runs on (empty: all of it) and the model's input size for it
  // (0: the model's own).
  cv::Rect crop;
  int inputWidth = 0, inputHeight = 0;
  int modelRuns = 0, regionRuns = 0;  // model runs made on this frame, and how many of them on a region
  Image mask;
  Image alpha;  // the prediction at full size, waiting for the stream's matte stage
  // Between a stream's stages: the flow to the previous frame, whether a fixed schedule runs the
  // model on it, whether the matte was carried to this frame, its forward estimate while held.
  std::shared_ptr<Motion> motion;
  bool scheduled = false, carried = false;
  std::atomic<bool> predicting{false};  // the model runs on it now; it comes back to the matte stage
  MatteEstimate forward;
  bool passedMotion = false, passedMatte = false;
  std::chrono::steady_clock::time_point started, queuedForInference;
  std::function<void(FrameJob*)> done;
  void* context = nullptr;  // the caller's own record of this frame

  // The frame's pixels: the decoded image, or the caller's raw RGB.
  ImageView source() const { return raw ? ImageView{data, rawWidth, rawHeight, 3} : view(rgb); }
};

class WorkQueue {
 public:
  void push(std::function<void()> task);
  bool pop(std::function<void()>& task);  // false once closed and drained
  void close();

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;
  bool closed_ = false;
};

class Engine {
 public:
  Engine(std::shared_ptr<Segmenter> segmenter, int cpuThreads, int inferenceThreads);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Starts a frame; job->done is called exactly once, on an engine thread.
  void submit(FrameJob* job);
  // Frames a stream let go outside its stages (flush): composited and encoded on engine threads.
  void release(std::vector<Ready> ready);
  // Finishes queued work, then joins the threads.
  void stop();
  const Segmenter& segmenter() const { return *segmenter_; }

 private:
  void prepare(FrameJob* job);
  void startPrediction(FrameJob* job);
  void cropTo(FrameJob* job, const cv::Rect& workRoi);
  void predict(FrameJob* job);  // resize and normalise, then the model (on the inference threads)
  void infer(FrameJob* job);
  void finish(FrameJob* job);
  void toMotion(FrameJob* job);
  void toMatte(FrameJob* job);
  bool matte(FrameJob* job);
  void output(FrameJob* job, Image alpha, std::chrono::steady_clock::time_point t0);
  void fail(FrameJob* job, const std::string& code, const std::string& message);
  std::shared_ptr<const Image> backgroundFor(const ImageView& bg, int width, int height);

  std::shared_ptr<Segmenter> segmenter_;
  WorkQueue cpuQueue_, inferQueue_;
  std::vector<std::thread> threads_;
  std::mutex bgMu_;
  std::map<std::tuple<const uint8_t*, int, int, int, int>, std::shared_ptr<const Image>> bgCache_;
  bool stopped_ = false;
};

}  // namespace bgrm
