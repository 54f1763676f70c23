// Loads the models export-espdl wrote into main/models/<model>/<target>/ (packed into flash rodata),
// checks each one's integrity stamp, runs the offline model's self test, streams the test vectors
// through the streaming model chunk by chunk (copying every state output back into its input), checks
// every chunk, and prints load time, memory, per-layer latency (ESP-DL's profiler) and the real-time factor.
// Then the keyword demo: audio (a WAV embedded in flash, or a board's microphone: menuconfig, "espdl-stream
// keyword demo") through ESP-DL's Fbank, the streaming model and the keyword detector, configured from the
// streaming model's metadata; it prints each detection with its time and score, latency and real-time factor.
//
// Everything but the ESP-DL and ESP-IDF calls lives in stream_check/ and kws_stream/ (and the detector), which
// the host test suite builds too. Each stage is a function of its own.
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

// ESP-DL 3.3.9's TensorInfo::print() (dl_memory_manager.hpp) prints a size_t with %d: no warning where
// size_t is 32 bits (the chips), an error where a host check compiles this file with ESP-DL's headers
// and -Werror. Its headers only: this file's own formats stay checked.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat"
#include "dl_fbank.hpp"
#include "dl_model_base.hpp"
#pragma GCC diagnostic pop
#include "esp_heap_caps.h"
#include "esp_timer.h"
#include "kws_stream.hpp"
#include "sdkconfig.h"
#include "stream_check.hpp"
#if CONFIG_ESPDL_DEMO_AUDIO_MIC
#include "driver/i2c_master.h"
#include "driver/i2s_std.h"
#include "esp_codec_dev.h"
#include "esp_codec_dev_defaults.h"
#endif

extern const uint8_t packed_models[] asm("_binary_models_espdl_start");
extern const uint8_t packed_models_end[] asm("_binary_models_espdl_end");
extern const uint8_t vectors_start[] asm("_binary_streaming_vectors_bin_start");
extern const uint8_t vectors_end[] asm("_binary_streaming_vectors_bin_end");
#if !CONFIG_ESPDL_DEMO_AUDIO_MIC
extern const uint8_t demo_wav_start[] asm("_binary_demo_audio_wav_start");  // main/CMakeLists.txt: ESPDL_DEMO_WAV
extern const uint8_t demo_wav_end[] asm("_binary_demo_audio_wav_end");
#endif

namespace {

using stream_check::ElementType;
using stream_check::TensorRef;

constexpr const char *kStampKey = "espdl_stream.crc32";  // export/integrity.py
constexpr const char *kExportIdKey = "espdl_stream.export_id";  // the same in both models and the vectors

class EspDlPort : public stream_check::StreamingPort {
public:
    explicit EspDlPort(dl::Model *model) : model_(model) {}
    bool input(const std::string &name, TensorRef &ref) override { return bind(model_->get_inputs(), name, ref); }
    bool output(const std::string &name, TensorRef &ref) override { return bind(model_->get_outputs(), name, ref); }
    void run() override { model_->run(); }
    void reset() override { model_->reset(); }
    uint64_t now_us() override { return uint64_t(esp_timer_get_time()); }

private:
    // ESP-DL hands tensors over in a std::map sorted by name: look them up by name, never by position.
    static bool bind(std::map<std::string, dl::TensorBase *> &tensors, const std::string &name, TensorRef &ref)
    {
        auto it = tensors.find(name);
        if (it == tensors.end()) return false;
        dl::TensorBase *t = it->second;
        if (t->get_dtype() == dl::DATA_TYPE_INT8) {
            ref.type = ElementType::Int8;
        } else if (t->get_dtype() == dl::DATA_TYPE_INT16) {
            ref.type = ElementType::Int16;
        } else {
            return false;
        }
        ref.data = t->get_element_ptr();
        ref.bytes = t->get_bytes();
        ref.exponent = t->get_exponent();
        return true;
    }
    dl::Model *model_;
};

void print_memory(const char *when)
{
    printf("memory %s: internal free %zu bytes, PSRAM free %zu bytes\n", when,
           heap_caps_get_free_size(MALLOC_CAP_INTERNAL), heap_caps_get_free_size(MALLOC_CAP_SPIRAM));
}

// Loads a packed model and checks its integrity stamp against its flash bytes; nullptr if either fails.
dl::Model *load_checked(const char *name)
{
    int64_t start = esp_timer_get_time();
    auto *model = new dl::Model(reinterpret_cast<const char *>(packed_models), name,
                                fbs::MODEL_LOCATION_IN_FLASH_RODATA);
    printf("loaded %s in %lld ms\n", name, (long long)((esp_timer_get_time() - start) / 1000));
    std::string verdict;
    bool intact = stream_check::check_packed_model(packed_models, size_t(packed_models_end - packed_models), name,
                                                   model->get_metadata_prop(kStampKey), verdict);
    printf("%s\n", verdict.c_str());
    if (!intact) {
        delete model;
        return nullptr;
    }
    return model;
}

bool offline_self_test()
{
    dl::Model *offline = load_checked("model.espdl");
    bool ok = offline && offline->test() == ESP_OK;  // its embedded test input and output, int8 exact, int16 within 1
    printf("OFFLINE SELF-TEST %s\n", ok ? "PASS" : "FAIL");
    delete offline;
    return ok;
}

bool streaming_check()
{
    stream_check::VectorFile vectors;
    std::string error;
    if (!stream_check::parse_vectors(vectors_start, size_t(vectors_end - vectors_start), vectors, error)) {
        printf("STREAMING FAIL: %s\n", error.c_str());
        return false;
    }
    print_memory("before loading the streaming model");
    dl::Model *model = load_checked("streaming_model.espdl");
    if (!model) {
        printf("STREAMING FAIL: the streaming model did not load intact\n");
        return false;
    }
    print_memory("after loading the streaming model");
    std::string export_id = model->get_metadata_prop(kExportIdKey);
    if (export_id != vectors.export_id) {
        printf("STREAMING FAIL: the vectors come from export '%s', streaming_model.espdl from export '%s': build with "
               "the files of one export\n", vectors.export_id.c_str(), export_id.c_str());
        delete model;
        return false;
    }
    model->profile_memory();  // ESP-DL's table: model, parameters, tensors in internal RAM, PSRAM and flash
    std::vector<std::pair<std::string, std::string>> pairs;
    if (!stream_check::parse_state_pairs(model->get_metadata_prop("state_pairs"), pairs, error)) {
        printf("STREAMING FAIL: %s\n", error.c_str());
        delete model;
        return false;
    }
    uint32_t chunk_frames = uint32_t(std::stoul(model->get_metadata_prop("chunk_frames")));
    double frames_per_second = std::stod(model->get_metadata_prop("frames_per_second"));

    EspDlPort port(model);
    port.reset();
    stream_check::StreamResult first = stream_check::run_stream(port, vectors, pairs);
    if (!first.error.empty()) printf("STREAMING FAIL: %s\n", first.error.c_str());
    if (first.has_mismatch) {
        printf("first mismatch: %s (%lu values outside %d LSB)\n", stream_check::describe(first.first_mismatch).c_str(),
               (unsigned long)first.differing_values, vectors.tolerance_lsb);
    }
    // uint32_t is unsigned long on the chips' toolchains and unsigned int on a PC: cast, never %u
    printf("STREAMING %s: %lu chunks of %lu frames, %zu state pairs\n", first.passed ? "PASS" : "FAIL",
           (unsigned long)vectors.chunks, (unsigned long)chunk_frames, pairs.size());

    port.reset();
    stream_check::StreamResult second = stream_check::run_stream(port, vectors, pairs);
    bool reset_ok = second.passed && second.outputs == first.outputs;
    printf("RESET %s: a second pass after reset gives the same outputs\n", reset_ok ? "PASS" : "FAIL");

    const auto &latency = first.latency;
    printf("latency per chunk: min %llu us, median %llu us, max %llu us\n", (unsigned long long)latency.min_us(),
           (unsigned long long)latency.median_us(), (unsigned long long)latency.max_us());
    printf("real-time factor %.4f (median compute time / %.1f ms of audio per chunk)\n",
           latency.real_time_factor(chunk_frames, frames_per_second), 1000.0 * chunk_frames / frames_per_second);
    // per-layer latency of one more chunk (the last one's inputs), by ESP-DL's own profiler; it advances the
    // streaming caches, so the model is reset afterwards
    model->profile_module();
    model->reset();
    delete model;
    return first.passed && reset_ok;
}

// ---------------------------------------------------------------- the keyword demo

// ESP-DL's tool::round for this chip (esp-dl dl/dl_define_private.hpp: half to even on the ESP32-P4).
#if CONFIG_IDF_TARGET_ESP32P4
constexpr kws_stream::Rounding kRounding = kws_stream::Rounding::HalfEven;
#else
constexpr kws_stream::Rounding kRounding = kws_stream::Rounding::HalfUp;
#endif
constexpr size_t kBlockSamples = 1600;  // 100 ms of 16 kHz audio per read

// ESP-DL's Fbank, set up field by field from the model's "frontend" metadata.
class EspDlFbank : public kws_stream::FeatureExtractor {
public:
    explicit EspDlFbank(const dl::audio::SpeechFeatureConfig &config) : fbank_(config) {}
    bool compute(const int16_t *frame, int length, float *features) override
    {
        // Fbank pre-emphasises a frame's first sample against itself (Kaldi's replicate padding), as the
        // project's front end does; the previous sample it takes is that one.
        return fbank_.process_frame(frame, length, features, frame[0]) == ESP_OK;
    }

private:
    dl::audio::Fbank fbank_;
};

dl::audio::SpeechFeatureConfig esp_dl_config(const kws_stream::FrontendConfig &f)
{
    dl::audio::SpeechFeatureConfig c;
    c.sample_rate = f.sample_rate;
    c.frame_length = f.frame_length;
    c.frame_shift = f.frame_shift;
    c.num_mel_bins = f.num_mel_bins;
    c.preemphasis = float(f.preemphasis);
    c.window_type = dl::audio::win_type_from_string(f.window_type.c_str());
    c.low_freq = float(f.low_freq);
    c.high_freq = float(f.high_freq);
    c.log_epsilon = float(f.log_epsilon);
    c.use_log_fbank = f.use_log_fbank;
    c.use_power = f.use_power;
    c.use_energy = f.use_energy;
    c.raw_energy = f.raw_energy;
    c.remove_dc_offset = f.remove_dc_offset;
    c.use_int16_fft = f.use_int16_fft;
    return c;
}

struct DemoSetup {
    kws_stream::FrontendConfig frontend;
    kws::DetectorConfig detector;
    kws_stream::ModelInterface model;
    std::vector<std::pair<std::string, std::string>> state_pairs;
};

// Everything the demo needs from the streaming model's metadata and tensors, checked to fit together.
bool read_setup(dl::Model *model, DemoSetup &setup, std::string &error)
{
    std::string frontend = model->get_metadata_prop("frontend"), detector = model->get_metadata_prop("detector");
    if (frontend.empty() || detector.empty()) {
        error = "streaming_model.espdl has no '" + std::string(frontend.empty() ? "frontend" : "detector") +
            "' metadata: flash a keyword model exported with its detector (export-espdl --model tcn)";
        return false;
    }
    if (!kws_stream::parse_frontend_config(frontend, setup.frontend, error) ||
        !kws::parse_detector_config(detector, setup.detector, error) ||
        !stream_check::parse_state_pairs(model->get_metadata_prop("state_pairs"), setup.state_pairs, error)) {
        return false;
    }
    setup.model.chunk_frames = uint32_t(std::strtoul(model->get_metadata_prop("chunk_frames").c_str(), nullptr, 10));
    setup.model.total_stride = uint32_t(std::strtoul(model->get_metadata_prop("total_stride").c_str(), nullptr, 10));
    setup.model.frames_per_second = std::strtod(model->get_metadata_prop("frames_per_second").c_str(), nullptr);
    auto x = model->get_inputs().find("x");
    auto y = model->get_outputs().find("y");
    if (x == model->get_inputs().end() || y == model->get_outputs().end()) {
        error = "the streaming model has no input 'x' or output 'y'";
        return false;
    }
    setup.model.input_shape = x->second->get_shape();
    setup.model.output_elements = size_t(y->second->get_size());
    if (dl::audio::win_type_from_string(setup.frontend.window_type.c_str()) == dl::audio::WinType::NONE) {
        error = "ESP-DL does not know the window '" + setup.frontend.window_type + "'";
        return false;
    }
    return kws_stream::check_configuration(setup.frontend, setup.detector, setup.model, error);
}

// Streams `count` samples, printing each detection as it is found and counting it. False (printed) when the
// front end fails.
bool stream_block(kws_stream::KeywordStream &stream, const int16_t *samples, size_t count, size_t &detections)
{
    std::vector<kws::Detection> found;
    std::string error;
    bool ok = stream.push(samples, count, found, error);
    for (const kws::Detection &d : found) {
        printf("DETECTION %s at %.2f s (score %.2f)\n", stream.detector().keywords[size_t(d.keyword)].c_str(),
               d.time_s, d.score);
    }
    detections += found.size();
    if (!ok) printf("KWS FAIL: %s\n", error.c_str());
    return ok;
}

// `heading`: "KWS DONE" at the end of the audio, "KWS" for the microphone's reports every 10 s (each report covers
// the chunks since the one before: the record stays bounded however long the microphone runs).
void print_timing(const char *heading, const kws_stream::KeywordStream &stream, size_t detections)
{
    const kws_stream::Timing &t = stream.timing();
    printf("%s: %zu detections in %lu chunks (%.2f s of audio)\n", heading, detections,
           (unsigned long)t.chunk.samples_us.size(), t.audio_s);
    printf("latency per chunk (its frames' Fbank, the model, the detector): min %llu us, median %llu us, max %llu us\n",
           (unsigned long long)t.chunk.min_us(), (unsigned long long)t.chunk.median_us(),
           (unsigned long long)t.chunk.max_us());
    printf("compute: Fbank %llu us, model %llu us, detector %llu us; real-time factor %.4f (compute time / audio "
           "time)\n", (unsigned long long)t.features_us, (unsigned long long)t.model_us,
           (unsigned long long)t.detector_us, t.real_time_factor());
}

#if CONFIG_ESPDL_DEMO_AUDIO_MIC
// The ESP32-P4-Function-EV-Board's microphone: an ES8311 codec (I2C address 0x30 in 8-bit form,
// ES8311_CODEC_DEFAULT_ADDR) whose ADC sends 16-bit samples over I2S, the ESP32-P4 the I2S master with MCLK.
// Pins (menuconfig, defaults from ESP-IDF's i2s_es8311 example for the P4 and esp-bsp's
// esp32_p4_function_ev_board.h): I2C SDA GPIO7, SCL GPIO8; I2S MCLK GPIO13, BCLK GPIO12, WS GPIO10, DIN GPIO11.
// The codec is set up through esp_codec_dev (ESP-IDF component registry), as that example and the board's BSP do.
esp_codec_dev_handle_t open_microphone(int sample_rate, std::string &error)
{
    i2c_master_bus_config_t i2c_config = {};
    i2c_config.i2c_port = 0;
    i2c_config.sda_io_num = gpio_num_t(CONFIG_ESPDL_DEMO_I2C_SDA_GPIO);
    i2c_config.scl_io_num = gpio_num_t(CONFIG_ESPDL_DEMO_I2C_SCL_GPIO);
    i2c_config.clk_source = I2C_CLK_SRC_DEFAULT;
    i2c_config.glitch_ignore_cnt = 7;
    i2c_config.flags.enable_internal_pullup = true;
    i2c_master_bus_handle_t i2c_bus = nullptr;
    if (i2c_new_master_bus(&i2c_config, &i2c_bus) != ESP_OK) {
        error = "the I2C bus to the ES8311 did not start";
        return nullptr;
    }
    i2s_chan_config_t channel_config = I2S_CHANNEL_DEFAULT_CONFIG(I2S_NUM_0, I2S_ROLE_MASTER);
    i2s_chan_handle_t rx = nullptr;
    i2s_std_config_t std_config = {};
    std_config.clk_cfg = I2S_STD_CLK_DEFAULT_CONFIG(uint32_t(sample_rate));
    std_config.slot_cfg = I2S_STD_PHILIPS_SLOT_DEFAULT_CONFIG(I2S_DATA_BIT_WIDTH_16BIT, I2S_SLOT_MODE_MONO);
    std_config.gpio_cfg.mclk = gpio_num_t(CONFIG_ESPDL_DEMO_I2S_MCLK_GPIO);
    std_config.gpio_cfg.bclk = gpio_num_t(CONFIG_ESPDL_DEMO_I2S_BCLK_GPIO);
    std_config.gpio_cfg.ws = gpio_num_t(CONFIG_ESPDL_DEMO_I2S_WS_GPIO);
    std_config.gpio_cfg.dout = I2S_GPIO_UNUSED;
    std_config.gpio_cfg.din = gpio_num_t(CONFIG_ESPDL_DEMO_I2S_DIN_GPIO);
    if (i2s_new_channel(&channel_config, nullptr, &rx) != ESP_OK || i2s_channel_init_std_mode(rx, &std_config) != ESP_OK ||
        i2s_channel_enable(rx) != ESP_OK) {
        error = "the I2S receive channel did not start";
        return nullptr;
    }
    audio_codec_i2c_cfg_t i2c_ctrl = {};
    i2c_ctrl.port = 0;
    i2c_ctrl.addr = ES8311_CODEC_DEFAULT_ADDR;
    i2c_ctrl.bus_handle = i2c_bus;
    audio_codec_i2s_cfg_t i2s_data = {};
    i2s_data.port = 0;
    i2s_data.rx_handle = rx;
    es8311_codec_cfg_t es8311 = {};
    es8311.ctrl_if = audio_codec_new_i2c_ctrl(&i2c_ctrl);
    es8311.gpio_if = audio_codec_new_gpio();
    es8311.codec_mode = ESP_CODEC_DEV_WORK_MODE_ADC;
    es8311.pa_pin = -1;  // no speaker amplifier: the demo only listens
    es8311.use_mclk = true;
    esp_codec_dev_cfg_t device = {};
    device.dev_type = ESP_CODEC_DEV_TYPE_IN;
    device.codec_if = es8311.ctrl_if && es8311.gpio_if ? es8311_codec_new(&es8311) : nullptr;
    device.data_if = audio_codec_new_i2s_data(&i2s_data);
    esp_codec_dev_handle_t mic = device.codec_if && device.data_if ? esp_codec_dev_new(&device) : nullptr;
    esp_codec_dev_sample_info_t format = {};
    format.bits_per_sample = 16;
    format.channel = 1;
    format.sample_rate = uint32_t(sample_rate);
    if (!mic || esp_codec_dev_open(mic, &format) != ESP_CODEC_DEV_OK ||
        esp_codec_dev_set_in_gain(mic, float(CONFIG_ESPDL_DEMO_MIC_GAIN_DB)) != ESP_CODEC_DEV_OK) {
        error = "the ES8311 did not answer or refused the format (check the board and menuconfig's pins)";
        return nullptr;
    }
    return mic;
}

// The microphone, in real time: CONFIG_ESPDL_DEMO_MIC_SECONDS seconds (0: for ever), timing every 10 s.
bool stream_microphone(kws_stream::KeywordStream &stream, int sample_rate, size_t &detections)
{
    std::string error;
    esp_codec_dev_handle_t mic = open_microphone(sample_rate, error);
    if (!mic) {
        printf("KWS FAIL: %s\n", error.c_str());
        return false;
    }
    printf("KWS: listening on the ESP32-P4-Function-EV-Board microphone (ES8311, %d Hz, gain %d dB)%s\n", sample_rate,
           CONFIG_ESPDL_DEMO_MIC_GAIN_DB, CONFIG_ESPDL_DEMO_MIC_SECONDS ? "" : ", for ever");
    std::vector<int16_t> block(kBlockSamples);
    const uint64_t total = uint64_t(CONFIG_ESPDL_DEMO_MIC_SECONDS) * uint64_t(sample_rate);
    uint64_t heard = 0, next_report = 10 * uint64_t(sample_rate);
    while (total == 0 || heard < total) {
        if (esp_codec_dev_read(mic, block.data(), int(block.size() * sizeof(int16_t))) != ESP_CODEC_DEV_OK) {
            printf("KWS FAIL: reading the microphone failed\n");
            return false;
        }
        if (!stream_block(stream, block.data(), block.size(), detections)) return false;
        heard += block.size();
        if (heard >= next_report) {
            print_timing("KWS", stream, detections);
            stream.restart_timing();
            detections = 0;
            next_report += 10 * uint64_t(sample_rate);
        }
    }
    return true;
}
#else
// The WAV linked into flash (main/CMakeLists.txt), as fast as the chip computes it.
bool stream_wav(kws_stream::KeywordStream &stream, int sample_rate, size_t &detections)
{
    kws_stream::WavAudio wav;
    std::string error;
    if (!kws_stream::parse_wav(demo_wav_start, size_t(demo_wav_end - demo_wav_start), wav, error)) {
        printf("KWS FAIL: the embedded WAV: %s\n", error.c_str());
        return false;
    }
    if (wav.sample_rate != uint32_t(sample_rate)) {
        printf("KWS FAIL: the embedded WAV is %lu Hz, the model's front end takes %d Hz: convert it (sox in.wav -r %d "
               "out.wav) and build with -DESPDL_DEMO_WAV=out.wav\n", (unsigned long)wav.sample_rate, sample_rate,
               sample_rate);
        return false;
    }
    printf("KWS: the embedded WAV, %zu samples (%.2f s)\n", wav.samples, double(wav.samples) / sample_rate);
    std::vector<int16_t> block(kBlockSamples);
    for (size_t first = 0; first < wav.samples; first += kBlockSamples) {
        size_t n = std::min(kBlockSamples, wav.samples - first);
        wav.copy(first, n, block.data());
        if (!stream_block(stream, block.data(), n, detections)) return false;
    }
    return true;
}
#endif

// The streaming model, ESP-DL's Fbank and the detector, all configured from the model's metadata, on the audio
// menuconfig chose. Any configuration that is missing or does not fit the model stops it with KWS FAIL.
bool keyword_demo()
{
    dl::Model *model = load_checked("streaming_model.espdl");
    if (!model) {
        printf("KWS FAIL: the streaming model did not load intact\n");
        return false;
    }
    DemoSetup setup;
    std::string error;
    if (!read_setup(model, setup, error)) {
        printf("KWS FAIL: %s\n", error.c_str());
        delete model;
        return false;
    }
    EspDlFbank fbank(esp_dl_config(setup.frontend));
    EspDlPort port(model);
    kws_stream::KeywordStream stream(setup.frontend, setup.detector, setup.model, fbank, port, kRounding);
    if (!stream.bind(setup.state_pairs, error)) {
        printf("KWS FAIL: %s\n", error.c_str());
        delete model;
        return false;
    }
    const kws_stream::FrontendConfig &f = setup.frontend;
    printf("KWS: ESP-DL Fbank %d mel bins, %d ms frames every %d ms, %s window; chunks of %lu frames; %zu keywords, "
           "smoothing %d and refractory %d output frames of %.3f s\n", f.num_mel_bins, f.frame_length, f.frame_shift,
           f.window_type.c_str(), (unsigned long)setup.model.chunk_frames, setup.detector.keywords.size(),
           setup.detector.smoothing_frames, setup.detector.refractory_frames, setup.detector.frame_period_s);
    size_t detections = 0;
#if CONFIG_ESPDL_DEMO_AUDIO_MIC
    bool ok = stream_microphone(stream, f.sample_rate, detections);
#else
    bool ok = stream_wav(stream, f.sample_rate, detections);
#endif
    if (ok) print_timing("KWS DONE", stream, detections);
    model->reset();
    delete model;
    return ok;
}

}  // namespace

extern "C" void app_main(void)
{
    print_memory("at start");
    bool offline_ok = offline_self_test();
    bool streaming_ok = streaming_check();
    printf("%s\n", offline_ok && streaming_ok ? "ALL PASS" : "SOME CHECKS FAILED");
    keyword_demo();  // after the checks: its lines come last, and a failed check is never hidden behind it
}
