#include "kws_detector.hpp"

#include <cctype>
#include <cmath>
#include <cstdlib>

namespace kws {

namespace {

// A small reader for the one JSON shape of the metadata: an object of numbers and of lists of strings or numbers.
class Json {
public:
    explicit Json(const std::string &text) : s_(text) {}

    bool object(DetectorConfig &out, std::string &error)
    {
        bool seen[6] = {};
        if (!take('{')) return fail(error, "detector: not a JSON object");
        while (true) {
            std::string key;
            if (!string(key)) return fail(error, "detector: expected a field name");
            if (!take(':')) return fail(error, "detector: expected ':' after \"" + key + "\"");
            bool ok;
            if (key == "classes") ok = strings(out.classes), seen[0] = true;
            else if (key == "keywords") ok = strings(out.keywords), seen[1] = true;
            else if (key == "thresholds") ok = numbers(out.thresholds), seen[2] = true;
            else if (key == "smoothing_frames") ok = integer(out.smoothing_frames), seen[3] = true;
            else if (key == "refractory_frames") ok = integer(out.refractory_frames), seen[4] = true;
            else if (key == "frame_period_s") ok = number(out.frame_period_s), seen[5] = true;
            else return fail(error, "detector: unknown field \"" + key + "\"");
            if (!ok) return fail(error, "detector: bad value for \"" + key + "\"");
            if (take('}')) break;
            if (!take(',')) return fail(error, "detector: expected ',' or '}'");
        }
        for (bool s : seen) {
            if (!s) return fail(error, "detector: a field is missing (classes, keywords, thresholds, smoothing_frames, "
                                       "refractory_frames, frame_period_s)");
        }
        skip();
        return pos_ == s_.size() || fail(error, "detector: text after the object");
    }

private:
    const std::string &s_;
    size_t pos_ = 0;

    static bool fail(std::string &error, const std::string &message)
    {
        error = message;
        return false;
    }
    void skip()
    {
        while (pos_ < s_.size() && std::isspace(static_cast<unsigned char>(s_[pos_]))) ++pos_;
    }
    bool take(char c)
    {
        skip();
        if (pos_ < s_.size() && s_[pos_] == c) {
            ++pos_;
            return true;
        }
        return false;
    }
    bool string(std::string &out)
    {
        if (!take('"')) return false;
        size_t end = s_.find('"', pos_);
        if (end == std::string::npos || s_.find('\\', pos_) < end) return false;  // names need no escapes
        out = s_.substr(pos_, end - pos_);
        pos_ = end + 1;
        return true;
    }
    bool number(double &out)
    {
        skip();
        const char *start = s_.c_str() + pos_;
        char *end = nullptr;
        out = std::strtod(start, &end);
        if (end == start) return false;
        pos_ += size_t(end - start);
        return std::isfinite(out);
    }
    bool integer(int &out)
    {
        double value;
        if (!number(value) || value != std::floor(value) || std::fabs(value) > 1e9) return false;
        out = int(value);
        return true;
    }
    template <typename T, typename Read>
    bool list(std::vector<T> &out, Read read)
    {
        out.clear();
        if (!take('[')) return false;
        if (take(']')) return true;
        do {
            T value;
            if (!read(value)) return false;
            out.push_back(value);
        } while (take(','));
        return take(']');
    }
    bool strings(std::vector<std::string> &out)
    {
        return list(out, [this](std::string &v) { return string(v); });
    }
    bool numbers(std::vector<double> &out)
    {
        return list(out, [this](double &v) { return number(v); });
    }
};

}  // namespace

bool parse_detector_config(const std::string &json, DetectorConfig &out, std::string &error)
{
    DetectorConfig config;
    if (!Json(json).object(config, error)) return false;
    if (config.thresholds.size() != config.keywords.size()) {
        error = "detector: one threshold per keyword is needed";
        return false;
    }
    for (const std::string &k : config.keywords) {
        bool found = false;
        for (const std::string &c : config.classes) found = found || c == k;
        if (!found) {
            error = "detector: keyword \"" + k + "\" is not a class of the model";
            return false;
        }
    }
    if (config.smoothing_frames < 1 || config.refractory_frames < 0 || !(config.frame_period_s > 0)) {
        error = "detector: smoothing must be at least one frame, refractory not negative, the frame period positive";
        return false;
    }
    out = config;
    return true;
}

Detector::Detector(const DetectorConfig &config) : config_(config), exps_(config.classes.size())
{
    for (const std::string &k : config_.keywords) {
        for (size_t c = 0; c < config_.classes.size(); ++c) {
            if (config_.classes[c] == k) keyword_class_.push_back(int(c));
        }
    }
    reset();
}

void Detector::reset()
{
    ring_.assign(size_t(config_.smoothing_frames) * config_.keywords.size(), 0.0);
    frame_ = 0;
    quiet_until_ = -1;
}

bool Detector::push(const float *logits, Detection &out)
{
    const size_t n_classes = config_.classes.size(), n_keywords = config_.keywords.size();
    const size_t width = size_t(config_.smoothing_frames);
    // 1. posteriors: softmax over all classes, the sum in class order
    double top = logits[0];
    for (size_t c = 1; c < n_classes; ++c) top = logits[c] > top ? double(logits[c]) : top;
    double total = 0;
    for (size_t c = 0; c < n_classes; ++c) {
        exps_[c] = std::exp(double(logits[c]) - top);
        total = c == 0 ? exps_[c] : total + exps_[c];
    }
    const size_t slot = size_t(frame_ % long(width));  // the ring's oldest row becomes this frame's
    for (size_t k = 0; k < n_keywords; ++k) ring_[slot * n_keywords + k] = exps_[size_t(keyword_class_[k])] / total;
    const long frame = frame_++;
    if (frame <= quiet_until_) return false;
    // 2. smoothing over the last W frames, oldest first; 3. the best keyword at or above its threshold
    int best = -1;
    double best_score = 0;
    for (size_t k = 0; k < n_keywords; ++k) {
        double sum = 0;
        for (size_t j = 0; j < width; ++j) {
            const size_t row = (slot + 1 + j) % width;
            sum = j == 0 ? ring_[row * n_keywords + k] : sum + ring_[row * n_keywords + k];
        }
        const double score = sum / double(width);
        if (score >= config_.thresholds[k] && (best < 0 || score > best_score)) {
            best = int(k);
            best_score = score;
        }
    }
    if (best < 0) return false;
    // 4. refractory
    quiet_until_ = frame + config_.refractory_frames;
    out.keyword = best;
    out.frame = frame;
    out.time_s = double(frame + 1) * config_.frame_period_s;
    out.score = best_score;
    return true;
}

}  // namespace kws
