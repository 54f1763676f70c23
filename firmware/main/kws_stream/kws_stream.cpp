#include "kws_stream.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <map>

namespace kws_stream {

namespace {

uint32_t le32(const uint8_t *p)
{
    return uint32_t(p[0]) | (uint32_t(p[1]) << 8) | (uint32_t(p[2]) << 16) | (uint32_t(p[3]) << 24);
}

uint16_t le16(const uint8_t *p) { return uint16_t(p[0] | (p[1] << 8)); }

// One value of a flat JSON object: a number, true/false, or a string without escapes.
struct JsonValue {
    enum class Kind { Number, Bool, String } kind = Kind::Number;
    double number = 0;
    bool boolean = false;
    std::string text;
};

// {"key": value, ...} with the values above: the shape of the "frontend" metadata. False and a message otherwise.
bool parse_flat_object(const std::string &s, std::map<std::string, JsonValue> &out, std::string &error)
{
    size_t pos = 0;
    auto skip = [&] {
        while (pos < s.size() && std::isspace(static_cast<unsigned char>(s[pos]))) ++pos;
    };
    auto take = [&](char c) {
        skip();
        if (pos < s.size() && s[pos] == c) {
            ++pos;
            return true;
        }
        return false;
    };
    auto string = [&](std::string &text) {
        if (!take('"')) return false;
        size_t end = s.find('"', pos);
        if (end == std::string::npos || s.find('\\', pos) < end) return false;
        text = s.substr(pos, end - pos);
        pos = end + 1;
        return true;
    };
    if (!take('{')) {
        error = "not a JSON object";
        return false;
    }
    if (take('}')) return true;
    do {
        std::string key;
        JsonValue value;
        if (!string(key) || !take(':')) {
            error = "expected \"name\": value";
            return false;
        }
        skip();
        if (s.compare(pos, 4, "true") == 0 || s.compare(pos, 5, "false") == 0) {
            value.kind = JsonValue::Kind::Bool;
            value.boolean = s[pos] == 't';
            pos += value.boolean ? 4 : 5;
        } else if (pos < s.size() && s[pos] == '"') {
            value.kind = JsonValue::Kind::String;
            if (!string(value.text)) {
                error = "\"" + key + "\": unterminated or escaped string";
                return false;
            }
        } else {
            const char *start = s.c_str() + pos;
            char *end = nullptr;
            value.number = std::strtod(start, &end);
            if (end == start || !std::isfinite(value.number)) {
                error = "\"" + key + "\": not a number, true/false or a string";
                return false;
            }
            pos += size_t(end - start);
        }
        if (!out.emplace(key, value).second) {
            error = "\"" + key + "\" appears twice";
            return false;
        }
    } while (take(','));
    if (!take('}')) {
        error = "expected ',' or '}'";
        return false;
    }
    skip();
    if (pos != s.size()) {
        error = "text after the object";
        return false;
    }
    return true;
}

constexpr const char *kWindows[] = {"povey", "hanning", "hann", "hamming", "sine", "rectangular", "blackman"};

int32_t round_as(Rounding rounding, float value)
{
    // beyond any int16 either way: saturates below, and keeps the float -> int conversion defined
    value = std::min(std::max(value, -65536.0f), 65536.0f);
    if (rounding == Rounding::HalfEven) return int32_t(std::nearbyint(value));  // the default mode: to nearest even
    return int32_t(std::floor(float(double(value) + 0.5)));
}

}  // namespace

int16_t WavAudio::sample(size_t index) const { return int16_t(le16(data + 2 * index)); }

void WavAudio::copy(size_t first, size_t count, int16_t *out) const
{
    for (size_t i = 0; i < count; ++i) out[i] = sample(first + i);
}

bool parse_wav(const uint8_t *bytes, size_t size, WavAudio &out, std::string &error)
{
    out = WavAudio();
    if (size < 12 || std::memcmp(bytes, "RIFF", 4) != 0 || std::memcmp(bytes + 8, "WAVE", 4) != 0) {
        error = "not a RIFF/WAVE file";
        return false;
    }
    bool have_format = false;
    size_t pos = 12;
    while (size - pos >= 8) {
        const uint8_t *chunk = bytes + pos;
        uint32_t length = le32(chunk + 4);
        pos += 8;
        if (length > size - pos) {
            error = "the WAV file is truncated: its '" + std::string(reinterpret_cast<const char *>(chunk), 4) +
                "' chunk says " + std::to_string(length) + " bytes, " + std::to_string(size - pos) + " follow";
            return false;
        }
        if (std::memcmp(chunk, "fmt ", 4) == 0) {
            if (length < 16) {
                error = "the WAV format chunk is too short";
                return false;
            }
            uint16_t format = le16(bytes + pos), channels = le16(bytes + pos + 2), bits = le16(bytes + pos + 14);
            out.sample_rate = le32(bytes + pos + 4);
            if (format != 1 || channels != 1 || bits != 16) {
                error = "the WAV file holds format " + std::to_string(format) + ", " + std::to_string(channels) +
                    " channels of " + std::to_string(bits) + " bits: the demo takes 16-bit PCM mono";
                return false;
            }
            have_format = true;
        } else if (std::memcmp(chunk, "data", 4) == 0) {
            if (!have_format) {
                error = "the WAV data chunk comes before its format chunk";
                return false;
            }
            out.data = bytes + pos;
            out.samples = length / 2;
            return true;
        }
        pos += length + (length & 1u);  // chunks are padded to an even size
        if (pos > size) break;
    }
    error = have_format ? "the WAV file has no data chunk" : "the WAV file has no format chunk";
    return false;
}

bool parse_frontend_config(const std::string &json, FrontendConfig &out, std::string &error)
{
    std::map<std::string, JsonValue> fields;
    if (!parse_flat_object(json, fields, error)) {
        error = "frontend: " + error;
        return false;
    }
    FrontendConfig config;
    // each field is taken out of `fields` as it is read: what is left at the end is unknown
    auto take = [&](const char *key, JsonValue::Kind kind, JsonValue &value) {
        auto it = fields.find(key);
        if (it == fields.end() || it->second.kind != kind) return false;
        value = it->second;
        fields.erase(it);
        return true;
    };
    JsonValue v;
    auto number = [&](const char *key, double &value) {
        return take(key, JsonValue::Kind::Number, v) && (value = v.number, true);
    };
    auto integer = [&](const char *key, int &value) {
        double d = 0;
        return number(key, d) && d == std::floor(d) && std::fabs(d) <= 1e6 && (value = int(d), true);
    };
    auto boolean = [&](const char *key, bool &value) {
        return take(key, JsonValue::Kind::Bool, v) && (value = v.boolean, true);
    };
    auto text = [&](const char *key, std::string &value) {
        return take(key, JsonValue::Kind::String, v) && (value = v.text, true);
    };
    std::string description;
    text("input", description);  // says what the samples are; nothing to configure
    const char *bad = nullptr;
    if (!integer("sample_rate", config.sample_rate)) bad = "sample_rate";
    else if (!integer("frame_length", config.frame_length)) bad = "frame_length";
    else if (!integer("frame_shift", config.frame_shift)) bad = "frame_shift";
    else if (!integer("num_mel_bins", config.num_mel_bins)) bad = "num_mel_bins";
    else if (!number("preemphasis", config.preemphasis)) bad = "preemphasis";
    else if (!text("window_type", config.window_type)) bad = "window_type";
    else if (!number("low_freq", config.low_freq)) bad = "low_freq";
    else if (!number("high_freq", config.high_freq)) bad = "high_freq";
    else if (!number("log_epsilon", config.log_epsilon)) bad = "log_epsilon";
    else if (!integer("use_log_fbank", config.use_log_fbank)) bad = "use_log_fbank";
    else if (!boolean("use_power", config.use_power)) bad = "use_power";
    else if (!boolean("use_energy", config.use_energy)) bad = "use_energy";
    else if (!boolean("raw_energy", config.raw_energy)) bad = "raw_energy";
    else if (!boolean("remove_dc_offset", config.remove_dc_offset)) bad = "remove_dc_offset";
    else if (!boolean("use_int16_fft", config.use_int16_fft)) bad = "use_int16_fft";
    if (bad) {
        error = std::string("frontend: \"") + bad + "\" is missing or of the wrong kind";
        return false;
    }
    if (!fields.empty()) {
        error = "frontend: unknown field \"" + fields.begin()->first + "\" (this firmware knows ESP-DL 3.3's "
                "SpeechFeatureConfig)";
        return false;
    }
    bool known_window = false;
    for (const char *w : kWindows) known_window = known_window || config.window_type == w;
    if (!known_window) {
        error = "frontend: window \"" + config.window_type + "\" is not one of ESP-DL's";
        return false;
    }
    if (config.sample_rate <= 0 || config.frame_shift_samples() <= 0 ||
        config.frame_length_samples() < config.frame_shift_samples() || config.num_mel_bins <= 0 ||
        !(config.preemphasis >= 0 && config.preemphasis < 1) || config.use_log_fbank < 0 || config.use_log_fbank > 2) {
        error = "frontend: out of ESP-DL's range (a positive rate and shift, frames no shorter than their shift, mel "
                "bins, pre-emphasis in [0, 1), use_log_fbank 0-2)";
        return false;
    }
    if (config.use_energy) {
        error = "frontend: use_energy adds a feature the models do not take";
        return false;
    }
    out = config;
    return true;
}

bool check_configuration(const FrontendConfig &frontend, const kws::DetectorConfig &detector,
                         const ModelInterface &model, std::string &error)
{
    const auto &x = model.input_shape;
    if (x.size() != 3 || x[0] != 1) {
        error = "the model's input x is not [1, frames, mel bins]";
        return false;
    }
    if (x[2] != frontend.num_mel_bins) {
        error = "the model takes " + std::to_string(x[2]) + " mel bins, its frontend metadata makes " +
            std::to_string(frontend.num_mel_bins) + ": re-export the model";
        return false;
    }
    if (uint32_t(x[1]) != model.chunk_frames) {
        error = "the model's input holds " + std::to_string(x[1]) + " frames, its chunk_frames metadata says " +
            std::to_string(model.chunk_frames);
        return false;
    }
    if (model.total_stride == 0 || model.chunk_frames % model.total_stride != 0) {
        error = "a chunk of " + std::to_string(model.chunk_frames) + " frames is not a whole number of output frames "
                "(total_stride " + std::to_string(model.total_stride) + ")";
        return false;
    }
    if (std::fabs(model.frames_per_second * frontend.frame_shift - 1000.0) > 1e-6) {
        error = "the model runs at " + std::to_string(model.frames_per_second) + " frames per second, its front end "
                "shifts frames by " + std::to_string(frontend.frame_shift) + " ms";
        return false;
    }
    const size_t out_frames = model.chunk_frames / model.total_stride;
    if (model.output_elements != out_frames * detector.classes.size()) {
        error = "the model's output y holds " + std::to_string(model.output_elements) + " values per chunk, the "
                "detector expects " + std::to_string(out_frames) + " frames x " +
                std::to_string(detector.classes.size()) + " classes";
        return false;
    }
    if (std::fabs(detector.frame_period_s * model.frames_per_second - model.total_stride) > 1e-6) {
        error = "the detector counts " + std::to_string(detector.frame_period_s) + " s per output frame, the model "
                "gives one every " + std::to_string(model.total_stride) + " input frames";
        return false;
    }
    return true;
}

void quantize(const float *values, size_t count, int exponent, stream_check::ElementType type, Rounding rounding,
              void *out)
{
    const float inv_scale = std::ldexp(1.0f, -exponent);
    const bool int8 = type == stream_check::ElementType::Int8;
    const int32_t low = int8 ? -128 : -32768, high = int8 ? 127 : 32767;
    auto *bytes = static_cast<uint8_t *>(out);
    for (size_t i = 0; i < count; ++i) {
        int32_t q = std::min(std::max(round_as(rounding, values[i] * inv_scale), low), high);
        if (int8) {
            bytes[i] = uint8_t(q);
        } else {
            bytes[2 * i] = uint8_t(q & 0xFF);
            bytes[2 * i + 1] = uint8_t((q >> 8) & 0xFF);
        }
    }
}

FrameSlicer::FrameSlicer(int length, int shift) : window_(size_t(length)), shift_(size_t(shift)) {}

bool FrameSlicer::push(int16_t sample)
{
    if (filled_ == window_.size()) {  // the last frame was handed out: drop its first `shift` samples
        std::memmove(window_.data(), window_.data() + shift_, (window_.size() - shift_) * sizeof(int16_t));
        filled_ -= shift_;
    }
    window_[filled_++] = sample;
    return filled_ == window_.size();
}

void FrameSlicer::reset() { filled_ = 0; }

double Timing::real_time_factor() const
{
    return audio_s > 0 ? 1e-6 * double(features_us + model_us + detector_us) / audio_s : 0.0;
}

KeywordStream::KeywordStream(const FrontendConfig &frontend, const kws::DetectorConfig &detector,
                             const ModelInterface &model, FeatureExtractor &features, stream_check::StreamingPort &port,
                             Rounding rounding)
    : frontend_(frontend), model_(model), features_(features), port_(port), rounding_(rounding), detector_(detector),
      slicer_(frontend.frame_length_samples(), frontend.frame_shift_samples()),
      frame_features_(size_t(frontend.num_mel_bins)), logits_(detector.classes.size())
{
}

bool KeywordStream::bind(const std::vector<std::pair<std::string, std::string>> &state_pairs, std::string &error)
{
    if (!port_.input("x", x_) || !port_.output("y", y_)) {
        error = "the model has no int8/int16 input 'x' or output 'y'";
        return false;
    }
    const size_t x_values = size_t(model_.chunk_frames) * size_t(frontend_.num_mel_bins);
    if (x_.bytes != x_values * stream_check::element_size(x_.type) ||
        y_.bytes != model_.output_elements * stream_check::element_size(y_.type)) {
        error = "the model's x or y holds another number of values than its configuration says";
        return false;
    }
    if (!states_.bind(port_, state_pairs, error)) return false;
    reset();
    return true;
}

void KeywordStream::reset()
{
    port_.reset();
    states_.zero();
    detector_.reset();
    slicer_.reset();
    frame_in_chunk_ = 0;
    chunks_ = 0;
    frames_ = 0;
    chunk_us_ = 0;
    timing_ = Timing();
}

bool KeywordStream::push(const int16_t *samples, size_t count, std::vector<kws::Detection> &found, std::string &error)
{
    const size_t row_bytes = size_t(frontend_.num_mel_bins) * stream_check::element_size(x_.type);
    for (size_t i = 0; i < count; ++i) {
        if (!slicer_.push(samples[i])) continue;
        uint64_t start = port_.now_us();
        if (!features_.compute(slicer_.frame(), frontend_.frame_length_samples(), frame_features_.data())) {
            error = "the front end failed on frame " + std::to_string(frames_);
            return false;
        }
        // x is [1, chunk frames, mel bins]: this frame's row
        quantize(frame_features_.data(), frame_features_.size(), x_.exponent, x_.type, rounding_,
                 static_cast<uint8_t *>(x_.data) + frame_in_chunk_ * row_bytes);
        uint64_t spent = port_.now_us() - start;
        timing_.features_us += spent;
        chunk_us_ += spent;
        ++frames_;
        if (++frame_in_chunk_ == model_.chunk_frames) run_chunk(found);
    }
    return true;
}

void KeywordStream::run_chunk(std::vector<kws::Detection> &found)
{
    uint64_t start = port_.now_us();
    port_.run();
    uint64_t ran = port_.now_us();
    // y is [1, output frames, classes], one frame's logits after another. Read before the state copy-back: the
    // memory planner may have given y the bytes of a state input.
    const size_t classes = logits_.size(), out_frames = model_.output_elements / classes;
    const float scale = std::ldexp(1.0f, y_.exponent);
    const auto *y = static_cast<const uint8_t *>(y_.data);
    const size_t size = stream_check::element_size(y_.type);
    for (size_t f = 0; f < out_frames; ++f) {
        for (size_t c = 0; c < classes; ++c) {
            logits_[c] = float(stream_check::read_element(y + (f * classes + c) * size, y_.type)) * scale;
        }
        kws::Detection detection;
        if (detector_.push(logits_.data(), detection)) found.push_back(detection);
    }
    uint64_t detected = port_.now_us();
    states_.copy();
    uint64_t end = port_.now_us();
    timing_.model_us += (ran - start) + (end - detected);
    timing_.detector_us += detected - ran;
    timing_.chunk.samples_us.push_back(chunk_us_ + end - start);
    timing_.audio_s += model_.chunk_frames / model_.frames_per_second;
    chunk_us_ = 0;
    frame_in_chunk_ = 0;
    ++chunks_;
}

}  // namespace kws_stream
