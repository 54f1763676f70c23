// Host test of the keyword demo's portable core (tests/test_firmware_demo.py builds and runs it): the same
// KeywordStream the board runs, on a WAV file, with two stand-ins for what only the chip has:
// - the front end: the Python front end's features of the same WAV (ESP-DL's Fbank is C++ for the chip; the
//   project checks the two agree in tests/test_calibration.py). Each frame the core hands over must hold exactly
//   the samples the Python front end framed, else the run fails;
// - the model: the oracle of oracle_port.hpp, holding the ESP-DL emulator's integers for every chunk, which
//   answers only when fed exactly the input the emulator was fed (the core's quantization and chunking) and the
//   right states (its copy-back), optionally in ESP-DL's memory layout.
//
//   kws_check WAV FRONTEND.json DETECTOR.json FEATURES.bin TRUTH.bin STATE_PAIRS_JSON CHUNK STRIDE FPS
//             half_up|half_even [--block SAMPLES] [--samples N] [--layout FILE]
//
// --block: samples handed over per push (as a microphone delivers them); --samples: stream only the first N.
//
// FEATURES.bin: float32 [frames][mel bins]. Prints "DETECTION <keyword> <frame> <time_s> <score>" per detection
// (full precision), a summary, and KWS PASS or KWS FAIL. Exit 0 pass, 1 fail, 2 bad input or configuration.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <sstream>

#include "kws_stream.hpp"
#include "oracle_port.hpp"

using namespace host_test;

namespace {

std::string read_text(const char *path)
{
    std::ifstream f(path);
    std::stringstream text;
    text << f.rdbuf();
    return text.str();
}

// The Python front end's features, frame by frame, for the frames the core cuts from the same WAV.
class RecordedFeatures : public kws_stream::FeatureExtractor {
public:
    RecordedFeatures(std::vector<float> rows, size_t mels, const kws_stream::WavAudio &wav, int shift)
        : rows_(std::move(rows)), mels_(mels), wav_(wav), shift_(size_t(shift))
    {
    }

    bool compute(const int16_t *frame, int length, float *features) override
    {
        const size_t first = next_ * shift_;
        if ((next_ + 1) * mels_ > rows_.size() || first + size_t(length) > wav_.samples) {
            std::printf("FRONT END: frame %zu is beyond the %zu frames of the Python front end\n", next_,
                        rows_.size() / mels_);
            return false;
        }
        for (int i = 0; i < length; ++i) {
            if (frame[i] != wav_.sample(first + size_t(i))) {
                std::printf("FRONT END: frame %zu sample %d is %d, the WAV has %d there\n", next_, i, frame[i],
                            wav_.sample(first + size_t(i)));
                return false;
            }
        }
        std::memcpy(features, rows_.data() + next_ * mels_, mels_ * sizeof(float));
        ++next_;
        return true;
    }

private:
    std::vector<float> rows_;
    size_t mels_;
    const kws_stream::WavAudio &wav_;
    size_t shift_, next_ = 0;
};

}  // namespace

int main(int argc, char **argv)
{
    if (argc < 11) {
        std::printf("usage: kws_check WAV FRONTEND.json DETECTOR.json FEATURES.bin TRUTH.bin STATE_PAIRS_JSON CHUNK "
                    "STRIDE FPS half_up|half_even [--block SAMPLES] [--samples N] [--layout FILE]\n");
        return 2;
    }
    std::vector<uint8_t> wav_bytes, feature_bytes;
    VectorFile truth;
    if (!read_file(argv[1], wav_bytes) || !read_file(argv[4], feature_bytes) || !load(argv[5], truth)) {
        std::printf("ERROR: cannot read the WAV, features or vectors\n");
        return 2;
    }
    std::string error;
    kws_stream::WavAudio wav;
    kws_stream::FrontendConfig frontend;
    kws::DetectorConfig detector;
    std::vector<std::pair<std::string, std::string>> pairs;
    if (!kws_stream::parse_wav(wav_bytes.data(), wav_bytes.size(), wav, error) ||
        !kws_stream::parse_frontend_config(read_text(argv[2]), frontend, error) ||
        !kws::parse_detector_config(read_text(argv[3]), detector, error) ||
        !parse_state_pairs(argv[6], pairs, error)) {
        std::printf("CONFIG ERROR: %s\n", error.c_str());
        return 2;
    }
    const VectorTensor *x = truth.find("x"), *y = truth.find("y");
    if (!x || !y) {
        std::printf("ERROR: the vectors hold no x or y\n");
        return 2;
    }
    kws_stream::ModelInterface model;
    model.chunk_frames = uint32_t(std::atoi(argv[7]));
    model.total_stride = uint32_t(std::atoi(argv[8]));
    model.frames_per_second = std::atof(argv[9]);
    model.input_shape.assign(x->dims.begin(), x->dims.end());
    model.output_elements = y->chunk_elements();
    auto rounding = std::strcmp(argv[10], "half_even") == 0 ? kws_stream::Rounding::HalfEven
                                                             : kws_stream::Rounding::HalfUp;
    size_t block = 1000, limit = wav.samples;
    std::vector<Placement> layout;
    for (int i = 11; i < argc; ++i) {
        if (std::strcmp(argv[i], "--block") == 0 && i + 1 < argc) {
            block = size_t(std::atol(argv[++i]));
        } else if (std::strcmp(argv[i], "--samples") == 0 && i + 1 < argc) {
            limit = std::min(limit, size_t(std::atol(argv[++i])));
        } else if (std::strcmp(argv[i], "--layout") == 0 && i + 1 < argc) {
            if (!read_layout(argv[++i], layout)) {
                std::printf("ERROR: cannot read the layout %s\n", argv[i]);
                return 2;
            }
        } else {
            std::printf("ERROR: unknown argument %s\n", argv[i]);
            return 2;
        }
    }
    if (!kws_stream::check_configuration(frontend, detector, model, error)) {
        std::printf("CONFIG ERROR: %s\n", error.c_str());
        return 2;
    }
    if (layout.empty()) layout = separate_buffers(truth, pairs);
    OraclePort port(truth, pairs, layout);
    if (!port.covers(pairs, error)) {
        std::printf("ERROR: %s\n", error.c_str());
        return 2;
    }
    std::vector<float> rows(feature_bytes.size() / sizeof(float));
    std::memcpy(rows.data(), feature_bytes.data(), rows.size() * sizeof(float));
    RecordedFeatures features(std::move(rows), size_t(frontend.num_mel_bins), wav, frontend.frame_shift_samples());

    kws_stream::KeywordStream stream(frontend, detector, model, features, port, rounding);
    if (!stream.bind(pairs, error)) {
        std::printf("ERROR: %s\n", error.c_str());
        return 2;
    }
    std::vector<kws::Detection> found;
    std::vector<int16_t> samples(block);
    bool ok = true;
    for (size_t first = 0; ok && first < limit; first += block) {
        size_t n = std::min(block, limit - first);
        wav.copy(first, n, samples.data());
        ok = stream.push(samples.data(), n, found, error);
    }
    for (const auto &d : found) {
        std::printf("DETECTION %s %ld %.17g %.17g\n", detector.keywords[size_t(d.keyword)].c_str(), d.frame, d.time_s,
                    d.score);
    }
    std::printf("FRAMES %ld CHUNKS %lu DETECTIONS %zu\n", stream.frames(), (unsigned long)stream.chunks(), found.size());
    ok = ok && port.violations == 0 && stream.chunks() <= truth.chunks;
    if (port.violations) std::printf("ORACLE: %d chunks were fed wrongly\n", port.violations);
    if (ok) {
        std::printf("KWS PASS\n");
    } else {
        std::printf("KWS FAIL%s%s\n", error.empty() ? "" : ": ", error.c_str());
    }
    const auto &timing = stream.timing();
    std::printf("latency us min/median/max %llu/%llu/%llu, real-time factor %.4f\n",
                (unsigned long long)timing.chunk.min_us(), (unsigned long long)timing.chunk.median_us(),
                (unsigned long long)timing.chunk.max_us(), timing.real_time_factor());
    return ok ? 0 : 1;
}
