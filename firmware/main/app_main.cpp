// Loads the models export-espdl wrote into main/models/<model>/<target>/ (packed into flash rodata),
// checks each one's integrity stamp, runs the offline model's self test, streams the test vectors
// through the streaming model chunk by chunk (copying every state output back into its input), checks
// every chunk, and prints load time, memory, per-layer latency (ESP-DL's profiler) and the real-time factor.
//
// Everything but the ESP-DL and ESP-IDF calls lives in stream_check/, which the host test suite builds too.
// Each stage is a function of its own: an application (a keyword detector, say) reuses load_checked().
#include <cstdio>
#include <map>
#include <string>

// ESP-DL 3.3.9's TensorInfo::print() (dl_memory_manager.hpp) prints a size_t with %d: no warning where
// size_t is 32 bits (the chips), an error where a host check compiles this file with ESP-DL's headers
// and -Werror. Its headers only: this file's own formats stay checked.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat"
#include "dl_model_base.hpp"
#pragma GCC diagnostic pop
#include "esp_heap_caps.h"
#include "esp_timer.h"
#include "stream_check.hpp"

extern const uint8_t packed_models[] asm("_binary_models_espdl_start");
extern const uint8_t packed_models_end[] asm("_binary_models_espdl_end");
extern const uint8_t vectors_start[] asm("_binary_streaming_vectors_bin_start");
extern const uint8_t vectors_end[] asm("_binary_streaming_vectors_bin_end");

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

}  // namespace

extern "C" void app_main(void)
{
    print_memory("at start");
    bool offline_ok = offline_self_test();
    bool streaming_ok = streaming_check();
    printf("%s\n", offline_ok && streaming_ok ? "ALL PASS" : "SOME CHECKS FAILED");
}
