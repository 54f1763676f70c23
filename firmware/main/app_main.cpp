// Loads the models export-espdl wrote into main/models/<target>/, runs the offline model's self
// test, streams the test vectors through the streaming model chunk by chunk (copying every state
// output back into its input), checks every chunk, and prints latency and the real-time factor.
//
// Everything but the ESP-DL calls lives in stream_check/, which the host test suite builds too.
#include <cstdio>
#include <map>
#include <string>

#include "dl_model_base.hpp"
#include "esp_heap_caps.h"
#include "esp_timer.h"
#include "stream_check.hpp"

extern const uint8_t packed_models[] asm("_binary_models_espdl_start");
extern const uint8_t vectors_start[] asm("_binary_streaming_vectors_bin_start");
extern const uint8_t vectors_end[] asm("_binary_streaming_vectors_bin_end");

namespace {

using stream_check::ElementType;
using stream_check::TensorRef;

class EspDlPort : public stream_check::StreamingPort {
public:
    explicit EspDlPort(dl::Model *model) : model_(model) {}
    bool input(const std::string &name, TensorRef &ref) override { return bind(model_->get_inputs(), name, ref); }
    bool output(const std::string &name, TensorRef &ref) override { return bind(model_->get_outputs(), name, ref); }
    void run() override { model_->run(); }
    void reset() override { model_->reset(); }
    uint64_t now_us() override { return esp_timer_get_time(); }

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
    printf("memory %s: internal free %u bytes, PSRAM free %u bytes\n", when,
           unsigned(heap_caps_get_free_size(MALLOC_CAP_INTERNAL)), unsigned(heap_caps_get_free_size(MALLOC_CAP_SPIRAM)));
}

dl::Model *load(const char *name)
{
    int64_t start = esp_timer_get_time();
    auto *model = new dl::Model(reinterpret_cast<const char *>(packed_models), name,
                                fbs::MODEL_LOCATION_IN_FLASH_RODATA);
    printf("loaded %s in %lld ms\n", name, (long long)((esp_timer_get_time() - start) / 1000));
    return model;
}

bool offline_self_test()
{
    dl::Model *offline = load("model.espdl");
    bool ok = offline->test() == ESP_OK;  // its embedded test input and output, int8 exact, int16 within 1
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
    dl::Model *model = load("streaming_model.espdl");
    print_memory("after loading the streaming model");
    std::vector<std::pair<std::string, std::string>> pairs;
    if (!stream_check::parse_state_pairs(model->get_metadata_prop("state_pairs"), pairs, error)) {
        printf("STREAMING FAIL: %s\n", error.c_str());
        delete model;
        return false;
    }
    uint32_t chunk_frames = std::stoul(model->get_metadata_prop("chunk_frames"));
    double frames_per_second = std::stod(model->get_metadata_prop("frames_per_second"));

    EspDlPort port(model);
    port.reset();
    stream_check::StreamResult first = stream_check::run_stream(port, vectors, pairs);
    if (!first.error.empty()) printf("STREAMING FAIL: %s\n", first.error.c_str());
    if (first.has_mismatch) {
        printf("first mismatch: %s (%u values outside %d LSB)\n", stream_check::describe(first.first_mismatch).c_str(),
               first.differing_values, vectors.tolerance_lsb);
    }
    printf("STREAMING %s: %u chunks of %u frames, %zu state pairs\n", first.passed ? "PASS" : "FAIL", vectors.chunks,
           chunk_frames, pairs.size());

    port.reset();
    stream_check::StreamResult second = stream_check::run_stream(port, vectors, pairs);
    bool reset_ok = second.passed && second.outputs == first.outputs;
    printf("RESET %s: a second pass after reset gives the same outputs\n", reset_ok ? "PASS" : "FAIL");

    const auto &latency = first.latency;
    printf("latency per chunk: min %llu us, median %llu us, max %llu us\n", (unsigned long long)latency.min_us(),
           (unsigned long long)latency.median_us(), (unsigned long long)latency.max_us());
    printf("real-time factor %.4f (median compute time / %.1f ms of audio per chunk)\n",
           latency.real_time_factor(chunk_frames, frames_per_second), 1000.0 * chunk_frames / frames_per_second);
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
