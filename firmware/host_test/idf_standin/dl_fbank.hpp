// Stand-in (see README.md): the parts of ESP-DL 3.3's audio front end app_main.cpp uses
// (esp-dl/audio/common/dl_audio_common.hpp, audio/speech_features/dl_speech_features.hpp and dl_fbank.hpp;
// the same in 3.3.7, 3.3.8 and 3.3.9).
#pragma once
#include <cstdint>

#include "esp_err.h"
#include "esp_heap_caps.h"

namespace dl {
namespace audio {
enum class WinType { HANNING, HANN, SINE, HAMMING, POVEY, BLACKMAN, RECTANGULAR, NONE };

WinType win_type_from_string(const char *str);

struct SpeechFeatureConfig {
    int sample_rate = 16000;
    int frame_length = 25;
    int frame_shift = 10;
    int num_mel_bins = 26;
    int num_ceps = 13;
    float preemphasis = 0.97f;
    float cepstral_lifter = 22.0;
    WinType window_type = WinType::HANNING;
    float low_freq = 80.0f;
    float high_freq = 0.0f;
    float log_epsilon = 1.1920928955078125e-07f;
    int use_log_fbank = 1;
    bool raw_energy = true;
    bool use_power = true;
    bool use_energy = false;
    bool use_int16_fft = false;
    bool remove_dc_offset = true;

    SpeechFeatureConfig() = default;
};

class SpeechFeatureBase {
public:
    explicit SpeechFeatureBase(const SpeechFeatureConfig config, uint32_t caps = MALLOC_CAP_DEFAULT);
    virtual ~SpeechFeatureBase() = default;
    virtual esp_err_t process_frame(const float *input, int win_len, float *output, float input_prev = 0) = 0;
    virtual esp_err_t process_frame(const int16_t *input, int win_len, float *output, int16_t input_prev = 0) = 0;
};

class Fbank : public SpeechFeatureBase {
public:
    Fbank(const SpeechFeatureConfig config, uint32_t caps = MALLOC_CAP_DEFAULT);
    ~Fbank();
    esp_err_t process_frame(const float *input, int win_len, float *output, float prev = 0) override;
    esp_err_t process_frame(const int16_t *input, int win_len, float *output, int16_t prev = 0) override;
};
}  // namespace audio
}  // namespace dl
