// Host driver of the portable keyword detector (tests/test_detector.py builds and runs it):
//     detector_check CONFIG.json LOGITS.bin
// LOGITS.bin: float32 little-endian [frames][classes]. Prints one line per detection, full precision:
//     DETECTION <keyword> <frame> <time_s> <score>
// then "FRAMES <n> DETECTIONS <m>". A config the firmware would refuse: its message and exit code 2.
#include "kws_detector.hpp"

#include <cstdio>
#include <fstream>
#include <iterator>
#include <sstream>
#include <vector>

int main(int argc, char **argv)
{
    if (argc != 3) {
        std::printf("usage: detector_check CONFIG.json LOGITS.bin\n");
        return 2;
    }
    std::ifstream config_file(argv[1]);
    std::stringstream text;
    text << config_file.rdbuf();
    kws::DetectorConfig config;
    std::string error;
    if (!kws::parse_detector_config(text.str(), config, error)) {
        std::printf("CONFIG ERROR: %s\n", error.c_str());
        return 2;
    }
    std::ifstream logits_file(argv[2], std::ios::binary);
    std::vector<char> bytes((std::istreambuf_iterator<char>(logits_file)), std::istreambuf_iterator<char>());
    const size_t n_classes = config.classes.size();
    if (bytes.size() % (n_classes * sizeof(float)) != 0) {
        std::printf("LOGITS ERROR: %zu bytes is not a whole number of %zu-class frames\n", bytes.size(), n_classes);
        return 2;
    }
    std::vector<float> logits(bytes.size() / sizeof(float));
    std::copy(bytes.begin(), bytes.end(), reinterpret_cast<char *>(logits.data()));
    const size_t frames = logits.size() / n_classes;
    kws::Detector detector(config);
    size_t found = 0;
    for (size_t t = 0; t < frames; ++t) {
        kws::Detection d;
        if (detector.push(&logits[t * n_classes], d)) {
            std::printf("DETECTION %s %ld %.17g %.17g\n", config.keywords[size_t(d.keyword)].c_str(), d.frame, d.time_s,
                        d.score);
            ++found;
        }
    }
    std::printf("FRAMES %zu DETECTIONS %zu\n", frames, found);
    return 0;
}
