// Portable core of the keyword demo: audio in, detections with times out. Everything but the ESP-DL and ESP-IDF
// calls: the WAV reader for a file embedded in flash, the front end's configuration from the streaming model's
// metadata and its agreement with the model, framing, quantization to the model input's exponent with ESP-DL's
// rounding, chunking, the model run with the state copy-back, the detector, and the timing.
//
// The front end itself (ESP-DL's dl::audio::Fbank on the chip) and the model (ESP-DL) sit behind interfaces, so
// the host test suite runs this same code with the Python front end's features and an oracle of the model
// (firmware/host_test/kws_check.cpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "kws_detector.hpp"
#include "stream_check.hpp"

namespace kws_stream {

// 16-bit PCM mono inside a WAV file's bytes, read in place (the bytes may sit in flash, unaligned).
struct WavAudio {
    const uint8_t *data = nullptr;  // little-endian int16 samples
    size_t samples = 0;
    uint32_t sample_rate = 0;
    int16_t sample(size_t index) const;
    void copy(size_t first, size_t count, int16_t *out) const;
};

// RIFF/WAVE with a PCM "fmt " chunk (16 bits, one channel) and a "data" chunk, every chunk size checked against
// the bytes there are. False and a message otherwise (another format, stereo, truncated).
bool parse_wav(const uint8_t *bytes, size_t size, WavAudio &out, std::string &error);

// ESP-DL's dl::audio::SpeechFeatureConfig, field by field, as the exporter writes it into the streaming model's
// "frontend" metadata (calibration/frontend.py FbankConfig.to_dict()). Lengths in milliseconds, as ESP-DL takes them.
struct FrontendConfig {
    int sample_rate = 0;
    int frame_length = 0;  // ms
    int frame_shift = 0;   // ms
    int num_mel_bins = 0;
    double preemphasis = 0;
    std::string window_type;  // ESP-DL's names: povey, hanning, hann, hamming, sine, rectangular, blackman
    double low_freq = 0, high_freq = 0, log_epsilon = 0;
    int use_log_fbank = 1;
    bool use_power = true, use_energy = false, raw_energy = true, remove_dc_offset = true, use_int16_fft = false;

    // as ESP-DL's SpeechFeatureBase computes them
    int frame_length_samples() const { return frame_length * sample_rate / 1000; }
    int frame_shift_samples() const { return frame_shift * sample_rate / 1000; }
};

// Every field above, and nothing else but the descriptive "input"; false and a message for a missing field, an
// unknown one, a value of the wrong kind or outside what ESP-DL accepts.
bool parse_frontend_config(const std::string &json, FrontendConfig &out, std::string &error);

// What the streaming model says about itself: its metadata and the shapes of its input x and output y.
struct ModelInterface {
    uint32_t chunk_frames = 0;             // "chunk_frames" metadata
    uint32_t total_stride = 0;             // "total_stride" metadata: input frames per output frame
    double frames_per_second = 0;          // "frames_per_second" metadata
    std::vector<int> input_shape;          // x: [1, chunk frames, mel bins]
    size_t output_elements = 0;            // y per chunk: output frames x classes
};

// The front end, the detector and the model must describe one pipeline: the mel bins the front end makes are the
// ones the model takes, the chunk is whole output frames, the frame rates agree, the detector reads every class
// the model outputs. False and a message naming the disagreement.
bool check_configuration(const FrontendConfig &frontend, const kws::DetectorConfig &detector,
                         const ModelInterface &model, std::string &error);

// tool::round as ESP-DL compiles it for each chip (esp-dl dl/tool/src/dl_tool.cpp): the ESP32-P4 rounds half to
// even, the ESP32-S3 half up, (int)floorf(x + 0.5) with the 0.5 a double.
enum class Rounding { HalfUp, HalfEven };

// dl::quantize: round(x * 2^-exponent) saturated to the element type, written little-endian into `out`.
void quantize(const float *values, size_t count, int exponent, stream_check::ElementType type, Rounding rounding,
              void *out);

// Audio in any block sizes -> ESP-DL's frames: frame t covers samples [t * shift, t * shift + length)
// (snip edges, as Fbank::process and the Python front end frame a whole recording).
class FrameSlicer {
public:
    FrameSlicer(int length, int shift);
    // Appends one sample; true when a frame is complete, then frame() holds it until the next push.
    bool push(int16_t sample);
    const int16_t *frame() const { return window_.data(); }
    void reset();

private:
    std::vector<int16_t> window_;
    size_t filled_ = 0;
    size_t shift_;
};

// The front end: one frame of samples in, num_mel_bins features out. On the chip ESP-DL's Fbank; on the host the
// Python front end's features for the same frame.
class FeatureExtractor {
public:
    virtual ~FeatureExtractor() = default;
    virtual bool compute(const int16_t *frame, int length, float *features) = 0;
};

struct Timing {
    stream_check::LatencyStats chunk;  // per chunk: its frames' features, quantization, the model, the detector
    uint64_t features_us = 0, model_us = 0, detector_us = 0;
    double audio_s = 0;                // audio the chunks cover
    double real_time_factor() const;   // all compute time / audio time
};

// Frames -> features -> quantized chunk -> model (with the state copy-back) -> detector.
class KeywordStream {
public:
    KeywordStream(const FrontendConfig &frontend, const kws::DetectorConfig &detector, const ModelInterface &model,
                  FeatureExtractor &features, stream_check::StreamingPort &port, Rounding rounding);

    // Binds the model's input "x", output "y" and the state pairs; false and a message if any is missing or of
    // another size than the configuration says.
    bool bind(const std::vector<std::pair<std::string, std::string>> &state_pairs, std::string &error);

    // Streams samples; appends each detection to `found`. False (and `error`) when the front end fails.
    bool push(const int16_t *samples, size_t count, std::vector<kws::Detection> &found, std::string &error);

    void reset();  // a new stream: the model's caches (port.reset()), states, detector, framing
    // A new measuring window, the stream going on: a stream without end (the microphone) keeps its timing record
    // bounded by restarting it after each report.
    void restart_timing() { timing_ = Timing(); }
    const Timing &timing() const { return timing_; }  // since reset() or restart_timing()
    uint32_t chunks() const { return chunks_; }
    long frames() const { return frames_; }
    const kws::DetectorConfig &detector() const { return detector_.config(); }

private:
    void run_chunk(std::vector<kws::Detection> &found);

    FrontendConfig frontend_;
    ModelInterface model_;
    FeatureExtractor &features_;
    stream_check::StreamingPort &port_;
    Rounding rounding_;
    kws::Detector detector_;
    FrameSlicer slicer_;
    stream_check::StateCopyBack states_;
    stream_check::TensorRef x_, y_;
    std::vector<float> frame_features_, logits_;
    uint32_t frame_in_chunk_ = 0, chunks_ = 0;
    long frames_ = 0;
    uint64_t chunk_us_ = 0;
    Timing timing_;
};

}  // namespace kws_stream
