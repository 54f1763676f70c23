// The keyword detector of export/detector.py, for the chip: per-frame class logits in, detections with times out.
//
// The specification is export/detector.py's docstring; this is its second implementation, step by step the same
// (double precision, sums in the same order), and tests/test_detector.py holds the two to the same detections on
// the same frame scores. No ESP-IDF include: the firmware and the host build the same code.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace kws {

struct DetectorConfig {
    std::vector<std::string> classes;   // every output class of the model, in output order
    std::vector<std::string> keywords;  // the classes that are detected
    std::vector<double> thresholds;     // one per keyword, on the smoothed posterior
    int smoothing_frames = 1;           // W, in output frames
    int refractory_frames = 0;          // R, in output frames
    double frame_period_s = 0.01;       // seconds between output frames
};

// The streaming model's "detector" metadata: a JSON object with exactly the fields above. False and a message for
// anything else (a missing field, a keyword that is not a class, a count that does not match).
bool parse_detector_config(const std::string &json, DetectorConfig &out, std::string &error);

struct Detection {
    int keyword = -1;  // index into DetectorConfig::keywords
    long frame = 0;    // output frame of the stream
    double time_s = 0; // (frame + 1) * frame_period_s: the audio heard when it fired
    double score = 0;  // the smoothed posterior that crossed the threshold
};

class Detector {
public:
    explicit Detector(const DetectorConfig &config);

    // One output frame: `logits` holds one value per class. True (and `out` filled) on a detection.
    bool push(const float *logits, Detection &out);
    void reset();
    const DetectorConfig &config() const { return config_; }

private:
    DetectorConfig config_;
    std::vector<int> keyword_class_;    // class index of each keyword
    std::vector<double> ring_;          // the last W frames' keyword posteriors, [W][keywords]
    std::vector<double> exps_;
    long frame_ = 0;
    long quiet_until_ = -1;
};

}  // namespace kws
