// The packed models, vectors and the keyword demo's WAV as the firmware links them (symbols and alignment from
// the embedding steps of firmware/main/CMakeLists.txt), checked as app_main.cpp checks them at boot.
//
//   embedded_check NAME=CRC32 ...   e.g. model.espdl=1446afa1 streaming_model.espdl=471a2a06
//
// CRC32 is each model's recorded stamp (on the chip: model->get_metadata_prop("espdl_stream.crc32")).
// Exit 0: every line PASS; 1: a check failed.
#include <cstdint>
#include <cstdio>
#include <string>

#include "kws_stream.hpp"
#include "stream_check.hpp"

extern const uint8_t packed_models[] asm("_binary_models_espdl_start");
extern const uint8_t packed_models_end[] asm("_binary_models_espdl_end");
extern const uint8_t vectors_start[] asm("_binary_streaming_vectors_bin_start");
extern const uint8_t vectors_end[] asm("_binary_streaming_vectors_bin_end");
extern const uint8_t demo_wav_start[] asm("_binary_demo_audio_wav_start");
extern const uint8_t demo_wav_end[] asm("_binary_demo_audio_wav_end");

int main(int argc, char **argv)
{
    bool ok = true;
    size_t package_size = size_t(packed_models_end - packed_models);
    bool aligned = reinterpret_cast<uintptr_t>(packed_models) % 16 == 0;
    std::printf("packed models: %zu bytes, %s16-byte aligned\n", package_size, aligned ? "" : "NOT ");
    ok = ok && aligned;
    for (int i = 1; i < argc; ++i) {
        std::string arg = argv[i];
        size_t equals = arg.find('=');
        std::string verdict;
        ok = stream_check::check_packed_model(packed_models, package_size, arg.substr(0, equals),
                                              equals == std::string::npos ? "" : arg.substr(equals + 1), verdict) && ok;
        std::printf("%s\n", verdict.c_str());
    }
    stream_check::VectorFile vectors;
    std::string error;
    bool vectors_ok = stream_check::parse_vectors(vectors_start, size_t(vectors_end - vectors_start), vectors, error);
    if (vectors_ok) {
        std::printf("VECTORS PASS: %u chunks, %zu tensors\n", unsigned(vectors.chunks), vectors.tensors.size());
    } else {
        std::printf("VECTORS FAIL: %s\n", error.c_str());
    }
    kws_stream::WavAudio wav;
    bool wav_ok = kws_stream::parse_wav(demo_wav_start, size_t(demo_wav_end - demo_wav_start), wav, error);
    if (wav_ok) {
        std::printf("WAV PASS: %zu samples at %u Hz\n", wav.samples, unsigned(wav.sample_rate));
    } else {
        std::printf("WAV FAIL: %s\n", error.c_str());
    }
    return ok && vectors_ok && wav_ok ? 0 : 1;
}
