// The JavaScript Segmenter: load() creates the ONNX Runtime session off the main thread;
// process() hands a frame to the engine and returns a Promise settled through a thread-safe function.
#include <memory>

#include "binding.h"
#include "engine.h"
#include "errors.h"
#include "streams.h"

namespace bgrm {
namespace {

// A frame in flight, owned by the JavaScript side until its promise settles.
struct Pending {
  FrameJob job;
  Napi::Promise::Deferred deferred;
  Napi::Reference<Napi::Buffer<uint8_t>> input;       // keeps the borrowed bytes alive
  Napi::Reference<Napi::Buffer<uint8_t>> background;  // and the background pixels
  explicit Pending(Napi::Env env) : deferred(Napi::Promise::Deferred::New(env)) {}
};

class SegmenterWrap : public Napi::ObjectWrap<SegmenterWrap> {
 public:
  static Napi::Function define(Napi::Env env) {
    return DefineClass(env, "Segmenter",
                       {InstanceMethod("load", &SegmenterWrap::load), InstanceMethod("process", &SegmenterWrap::process),
                        InstanceMethod("close", &SegmenterWrap::close), InstanceMethod("info", &SegmenterWrap::info),
                        InstanceMethod("endStream", &SegmenterWrap::endStream),
                        InstanceMethod("flushStream", &SegmenterWrap::flushStream)});
  }

  explicit SegmenterWrap(const Napi::CallbackInfo& info) : Napi::ObjectWrap<SegmenterWrap>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 1 || !info[0].IsObject()) {
      throw makeError(env, "ERR_INVALID_ARGUMENT", "new Segmenter(options) needs an options object");
    }
    Napi::Object o = info[0].As<Napi::Object>();
    options_.modelPath = get<std::string>(o, "modelPath", "");
    options_.device = get<std::string>(o, "device", "cpu");
    options_.deviceId = get<int>(o, "deviceId", 0);
    options_.intraOpThreads = get<int>(o, "threads", 0);
    options_.allowSpinning = get<bool>(o, "spinning", false);
    options_.memoryPattern = get<bool>(o, "memoryPattern", false);
    options_.sharedArena = get<bool>(o, "sharedArena", true);
    options_.memoryReuse = get<bool>(o, "memoryReuse", false);
    options_.fallbackWidth = get<int>(o, "width", 320);
    options_.fallbackHeight = get<int>(o, "height", 320);
    options_.mean = triple(o, "mean", options_.mean);
    options_.std = triple(o, "std", options_.std);
    cpuThreads_ = get<int>(o, "cpuThreads", 1);
    inferenceThreads_ = get<int>(o, "inferenceThreads", 1);
    if (options_.modelPath.empty()) throw makeError(env, "ERR_INVALID_ARGUMENT", "options.modelPath is required");
  }

  ~SegmenterWrap() override { shutdown(); }

 private:
  class LoadWorker : public Napi::AsyncWorker {
   public:
    LoadWorker(Napi::Env env, SegmenterWrap* owner)
        : Napi::AsyncWorker(env), owner_(owner), deferred_(Napi::Promise::Deferred::New(env)) {
      self_ = Napi::Persistent(owner->Value());
    }
    Napi::Promise promise() { return deferred_.Promise(); }
    void Execute() override {
      try {
        segmenter_ = std::make_shared<Segmenter>(owner_->options_);
      } catch (const Error& e) {
        code_ = e.code();
        SetError(e.what());
      } catch (const std::exception& e) {
        code_ = "ERR_MODEL_LOAD";
        SetError(e.what());
      }
    }
    void OnOK() override {
      owner_->start(Env(), std::move(segmenter_));
      deferred_.Resolve(owner_->infoObject(Env()));
    }
    void OnError(const Napi::Error& e) override { deferred_.Reject(makeError(Env(), code_, e.Message()).Value()); }

   private:
    SegmenterWrap* owner_;
    Napi::Promise::Deferred deferred_;
    Napi::ObjectReference self_;
    std::shared_ptr<Segmenter> segmenter_;
    std::string code_;
  };

  void start(Napi::Env env, std::shared_ptr<Segmenter> segmenter) {
    engine_ = std::make_unique<Engine>(std::move(segmenter), cpuThreads_, inferenceThreads_);
    tsfn_ = Napi::ThreadSafeFunction::New(env, Napi::Function(), "bgrm-frames", 0, 1);
    tsfn_.Unref(env);  // referenced only while frames are in flight
  }

  Napi::Value load(const Napi::CallbackInfo& info) {
    if (engine_ || loading_) throw makeError(info.Env(), "ERR_INVALID_STATE", "load() was already called");
    loading_ = true;
    auto* w = new LoadWorker(info.Env(), this);
    Napi::Promise p = w->promise();
    w->Queue();
    return p;
  }

  Napi::Object infoObject(Napi::Env env) {
    Napi::Object o = Napi::Object::New(env);
    if (!engine_) return o;
    const Segmenter& s = engine_->segmenter();
    o.Set("inputName", s.inputName());
    o.Set("outputName", s.outputName());
    o.Set("inputWidth", s.inputWidth());
    o.Set("inputHeight", s.inputHeight());
    o.Set("device", s.options().device);
    o.Set("threads", s.options().intraOpThreads);
    o.Set("memoryReuse", !s.memoryReuseOff());
    return o;
  }

  Napi::Value info(const Napi::CallbackInfo& info) { return infoObject(info.Env()); }

  // process(input: Buffer, options) -> Promise<{data, width, height, channels, timings}>
  Napi::Value process(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!engine_) throw makeError(env, "ERR_INVALID_STATE", "the segmenter is not loaded (call load()) or was closed");
    if (info.Length() < 1 || !info[0].IsBuffer()) {
      throw makeError(env, "ERR_INVALID_ARGUMENT", "process(buffer[, options]) needs a Buffer");
    }
    auto input = info[0].As<Napi::Buffer<uint8_t>>();
    auto* p = new Pending(env);
    FrameJob& job = p->job;
    p->input = Napi::Persistent(input);
    job.data = input.Data();
    job.size = input.Length();
    if (info.Length() > 1 && info[1].IsObject()) {
      Napi::Object o = info[1].As<Napi::Object>();
      job.output = get<std::string>(o, "output", "rgba");
      job.encoding = get<std::string>(o, "encoding", "png");
      job.pngLevel = get<int>(o, "pngLevel", 1);
      job.quality = std::max(0, std::min(100, get<int>(o, "quality", 0)));
      if (job.encoding != "png" && job.encoding != "webp" && job.encoding != "jpeg" && job.encoding != "raw") {
        delete p;
        throw makeError(env, "ERR_INVALID_ARGUMENT", "encoding must be png, webp, jpeg or raw");
      }
      job.pngFilter = get<std::string>(o, "pngFilter", "sub");
      job.limits.maxPixels = int64_t(get<double>(o, "maxPixels", double(job.limits.maxPixels)));
      job.limits.maxSide = get<int>(o, "maxSide", job.limits.maxSide);
      Napi::Value raw = o.Get("raw");
      if (raw.IsObject()) {
        job.raw = true;
        job.rawWidth = get<int>(raw.As<Napi::Object>(), "width", 0);
        job.rawHeight = get<int>(raw.As<Napi::Object>(), "height", 0);
      }
      Napi::Value color = o.Get("color");
      if (color.IsArray() && color.As<Napi::Array>().Length() == 3) {
        job.hasColor = true;
        for (uint32_t c = 0; c < 3; ++c) job.color[c] = uint8_t(color.As<Napi::Array>().Get(c).As<Napi::Number>().Int32Value());
      }
      Napi::Value bg = o.Get("background");
      if (bg.IsObject()) {
        Napi::Object b = bg.As<Napi::Object>();
        Napi::Value data = b.Get("data");
        const int bw = get<int>(b, "width", 0), bh = get<int>(b, "height", 0);
        if (!data.IsBuffer() || bw <= 0 || bh <= 0 || data.As<Napi::Buffer<uint8_t>>().Length() != size_t(bw) * bh * 3) {
          delete p;
          throw makeError(env, "ERR_INVALID_ARGUMENT", "background must be {data: RGB Buffer, width, height}");
        }
        p->background = Napi::Persistent(data.As<Napi::Buffer<uint8_t>>());
        job.background = ImageView{data.As<Napi::Buffer<uint8_t>>().Data(), bw, bh, 3};
      }
      Napi::Value t = o.Get("temporal");
      if (t.IsObject()) {
        std::string problem;
        job.stream = streamFor(t.As<Napi::Object>(), get<int>(o, "keyframeInterval", 1), &problem);
        if (!job.stream) {
          delete p;
          throw makeError(env, "ERR_INVALID_ARGUMENT", problem);
        }
        job.seq = job.stream->enqueue();
        job.frameNumber = int64_t(get<double>(t.As<Napi::Object>(), "frame", -1));
      }
    }
    Napi::Promise promise = p->deferred.Promise();
    job.context = p;
    if (inFlight_++ == 0) tsfn_.Ref(env);
    job.done = [this](FrameJob* j) {
      // Called on an engine thread: hop back to JavaScript to settle the promise.
      Pending* pending = static_cast<Pending*>(j->context);
      tsfn_.NonBlockingCall(pending, [this](Napi::Env env, Napi::Function, Pending* done) { settle(env, done); });
    };
    engine_->submit(&job);
    return promise;
  }

  void settle(Napi::Env env, Pending* p) {
    std::unique_ptr<Pending> owned(p);
    FrameJob& job = p->job;
    if (--inFlight_ == 0 && engine_) tsfn_.Unref(env);
    Napi::HandleScope scope(env);
    if (!job.errorCode.empty()) {
      p->deferred.Reject(makeError(env, job.errorCode, job.errorMessage).Value());
      return;
    }
    auto* bytes = new std::vector<uint8_t>(std::move(job.bytes));
    Napi::Object r = Napi::Object::New(env);
    r.Set("data", Napi::Buffer<uint8_t>::New(env, bytes->data(), bytes->size(),
                                             [](Napi::Env, uint8_t*, std::vector<uint8_t>* v) { delete v; }, bytes));
    r.Set("width", job.width);
    r.Set("height", job.height);
    r.Set("channels", job.channels);
    r.Set("modelRuns", job.modelRuns);
    r.Set("regionRuns", job.regionRuns);
    Napi::Object t = Napi::Object::New(env);
    t.Set("decodeMs", job.decodeMs);
    t.Set("resizeMs", job.resizeMs);
    t.Set("queueMs", job.queueMs);
    t.Set("inferMs", job.inferMs);
    t.Set("matteMs", job.matteMs);
    t.Set("encodeMs", job.encodeMs);
    t.Set("totalMs", job.totalMs);
    r.Set("timings", t);
    p->deferred.Resolve(r);
  }

  void shutdown() {
    if (!engine_) return;
    engine_->stop();  // drains: every queued frame still settles through the thread-safe function
    engine_.reset();
    tsfn_.Release();
  }

  Napi::Value close(const Napi::CallbackInfo& info) {
    streams_.flushAll();
    shutdown();
    streams_.clear();
    return info.Env().Undefined();
  }

  // A stream's frames (videos, cameras): its state is carried over from frame to frame. A stream
  // asked for with other settings starts afresh. Null (and `problem`) for options that make no sense.
  std::shared_ptr<TemporalStream> streamFor(const Napi::Object& t, int keyframeInterval, std::string* problem) {
    TemporalParams params;
    const std::string flow = get<std::string>(t, "flow", "patch");
    if (flow == "ultrafast") params.flowPreset = 0;
    else if (flow == "fast") params.flowPreset = 1;
    else if (flow == "medium") params.flowPreset = 2;
    else if (flow == "patch") params.flowPreset = kFlowPatch;
    else {
      *problem = "temporal.flow must be ultrafast, fast, patch or medium";
      return nullptr;
    }
    KeyframePolicy policy;
    if (keyframeInterval < 0) {
      *problem = "keyframeInterval must be 0 (adaptive) or a whole number of frames";
      return nullptr;
    }
    policy.interval = keyframeInterval;
    policy.smooth = get<bool>(t, "smooth", false);
    policy.roi = get<bool>(t, "roi", true);
    // frames held for smoothing stay in flight: fewer than the caller lets fly, or it would wait forever
    const int between = (keyframeInterval > 0 ? keyframeInterval : policy.maxInterval) - 1;
    policy.maxHold = std::max(1, std::min(between, get<int>(t, "maxHold", between)));
    return streams_.get(get<std::string>(t, "stream", ""), params, policy);
  }

  // flushStream(id): no more frames for now: frames held for smoothing leave with what is known.
  Napi::Value flushStream(const Napi::CallbackInfo& info) {
    if (info.Length() > 0 && info[0].IsString()) streams_.flush(info[0].As<Napi::String>().Utf8Value());
    return info.Env().Undefined();
  }

  // endStream(id): forget a stream's temporal state (frames in flight keep theirs until they settle).
  Napi::Value endStream(const Napi::CallbackInfo& info) {
    if (info.Length() > 0 && info[0].IsString()) streams_.end(info[0].As<Napi::String>().Utf8Value());
    return info.Env().Undefined();
  }

  StreamRegistry streams_{[this](std::vector<Ready> ready) {
    if (engine_) engine_->release(std::move(ready));
  }};

  SegmenterOptions options_;
  int cpuThreads_ = 1, inferenceThreads_ = 1;
  bool loading_ = false;
  std::unique_ptr<Engine> engine_;
  Napi::ThreadSafeFunction tsfn_;
  int inFlight_ = 0;
};

}  // namespace

Napi::Object initSegmenter(Napi::Env env, Napi::Object exports) {
  exports.Set("Segmenter", SegmenterWrap::define(env));
  return exports;
}

}  // namespace bgrm
