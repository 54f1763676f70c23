// Portable core of the firmware's streaming check: everything that is not an ESP-DL call.
//
// No ESP-IDF include here: the same code runs on the board (behind an ESP-DL port, app_main.cpp)
// and on the host (behind a test oracle, firmware/host_test), so the test suite builds and runs it
// against the vectors the exporter really emits.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace stream_check {

enum class Role : uint8_t { Input = 0, Output = 1 };
enum class ElementType : uint8_t { Int8 = 1, Int16 = 2 };

size_t element_size(ElementType type);
int32_t read_element(const uint8_t *p, ElementType type);  // little-endian, sign-extended

// One tensor of the vector file: its per-chunk integers, concatenated chunk after chunk.
struct VectorTensor {
    std::string name;
    Role role = Role::Input;
    ElementType type = ElementType::Int8;
    int exponent = 0;
    std::vector<uint32_t> dims;   // of one chunk, ESP-DL layout
    std::vector<uint8_t> data;    // all chunks, little-endian integers

    size_t chunk_elements() const;
    size_t chunk_bytes() const { return chunk_elements() * element_size(type); }
    const uint8_t *chunk(size_t index) const { return data.data() + index * chunk_bytes(); }
    int32_t value(size_t chunk_index, size_t element) const;  // sign-extended
};

struct VectorFile {
    uint32_t chunks = 0;
    int tolerance_lsb = 0;  // how far a device output may be from the expected integer
    std::string export_id;  // the "espdl_stream.export_id" of the .espdl files written with these vectors
    std::vector<VectorTensor> tensors;

    const VectorTensor *find(const std::string &name) const;
};

// Parses the "ESV1" format (version 2) written by export/vectors.py. Returns false and an error message for a
// wrong magic or version, a CRC mismatch, a truncated file or an unknown element type.
bool parse_vectors(const uint8_t *bytes, size_t size, VectorFile &out, std::string &error);

// CRC-32 (IEEE 802.3, reflected polynomial 0xEDB88320): Python's zlib.crc32, ESP-IDF's esp_rom_crc32_le.
uint32_t crc32(const uint8_t *data, size_t size, uint32_t crc = 0);

// One .espdl file inside an ESP-DL PDL3 package (esp-dl >= 3.3.7's pack_espdl_models.py): the file's own
// bytes, without the packer's padding.
struct PackedModel {
    const uint8_t *data = nullptr;
    size_t size = 0;
};

// Finds the model packed under `name` (its file name, e.g. "model.espdl"). False and an error message
// for a package that is not PDL3, a truncated one, or a missing name.
bool find_packed_model(const uint8_t *package, size_t size, const std::string &name, PackedModel &out,
                       std::string &error);

// The exporter's integrity stamp (export/integrity.py): `recorded` is the file's "espdl_stream.crc32"
// metadata value; it must occur once in the file as a FlatBuffers string, and equal the CRC-32 of the
// file with those 8 characters read as "00000000". Sets `computed` (8 lowercase hex digits, or empty if
// the value cannot be located) and returns whether the file is intact.
bool check_stamp(const uint8_t *file, size_t size, const std::string &recorded, std::string &computed,
                 std::string &error);

// Both of the above for the model packed under `name`: `verdict` is one line for the log,
// "INTEGRITY PASS: model.espdl, 47648 bytes, CRC-32 1446afa1" or "INTEGRITY FAIL: model.espdl: <why>".
bool check_packed_model(const uint8_t *package, size_t size, const std::string &name, const std::string &recorded,
                        std::string &verdict);

// (state output, state input) pairs from the streaming model's "state_pairs" metadata,
// a JSON list of two-string lists such as [["h0_out", "h0_in"], ["c0_out", "c0_in"]].
bool parse_state_pairs(const std::string &json, std::vector<std::pair<std::string, std::string>> &out,
                       std::string &error);

// A tensor the model exposes: where its integers live and how to read them.
struct TensorRef {
    void *data = nullptr;
    size_t bytes = 0;
    ElementType type = ElementType::Int8;
    int exponent = 0;
};

// What the runner needs from a streaming model. On the board: ESP-DL. On the host: a test oracle.
class StreamingPort {
public:
    virtual ~StreamingPort() = default;
    virtual bool input(const std::string &name, TensorRef &out) = 0;
    virtual bool output(const std::string &name, TensorRef &out) = 0;
    virtual void run() = 0;
    virtual void reset() = 0;         // zero every StreamingCache, as at load time
    virtual uint64_t now_us() = 0;    // a monotonic clock
};

// The recurrent state copy-back: after each chunk every state output goes into its state input. All outputs
// are read before any input is written: the memory planner may give a state input the bytes of another
// pair's output. bind() checks each pair names an output and an input of one size, type and exponent.
class StateCopyBack {
public:
    bool bind(StreamingPort &port, const std::vector<std::pair<std::string, std::string>> &state_pairs,
              std::string &error);
    void zero();  // every state input to zero: the start of a stream
    void copy();  // after a run

private:
    std::vector<std::pair<TensorRef, TensorRef>> copies_;  // state output -> state input
    std::vector<uint8_t> staged_;
};

struct Mismatch {
    uint32_t chunk = 0;
    std::string tensor;
    size_t index = 0;
    int32_t got = 0;
    int32_t want = 0;
};

struct LatencyStats {
    std::vector<uint64_t> samples_us;
    uint64_t min_us() const;
    uint64_t median_us() const;
    uint64_t max_us() const;
    // compute time over the audio time of one chunk: below 1 keeps up with real time
    double real_time_factor(uint32_t chunk_frames, double frames_per_second) const;
};

struct StreamResult {
    bool passed = false;
    std::string error;                  // a setup problem (missing tensor, wrong size or exponent)
    uint32_t differing_values = 0;
    bool has_mismatch = false;
    Mismatch first_mismatch;            // the first value outside the tolerance
    LatencyStats latency;
    std::vector<uint8_t> outputs;       // every output of every chunk, to compare two passes
};

// Feeds every chunk of the vector file's input into the port, runs it, compares every output
// (and state) with the expected integers within the file's tolerance, and copies every state
// output into its state input before the next chunk (all outputs read before any input is written:
// the memory planner may give a state input the bytes of another pair's output). State inputs start at zero.
StreamResult run_stream(StreamingPort &port, const VectorFile &vectors,
                        const std::vector<std::pair<std::string, std::string>> &state_pairs);

std::string describe(const Mismatch &m);

}  // namespace stream_check
