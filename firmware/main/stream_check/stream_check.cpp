#include "stream_check.hpp"

#include <algorithm>
#include <cstring>

namespace stream_check {

namespace {

constexpr char kMagic[4] = {'E', 'S', 'V', '1'};
constexpr uint16_t kVersion = 1;

uint32_t crc32(const uint8_t *data, size_t size)
{
    // zlib's CRC-32 (reflected polynomial 0xEDB88320), as Python's zlib.crc32 computes it
    uint32_t crc = 0xFFFFFFFFu;
    for (size_t i = 0; i < size; ++i) {
        crc ^= data[i];
        for (int bit = 0; bit < 8; ++bit) {
            crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
        }
    }
    return ~crc;
}

class Reader {
public:
    Reader(const uint8_t *data, size_t size) : data_(data), size_(size) {}
    bool u8(uint8_t &v) { return take(&v, 1); }
    bool u16(uint16_t &v) { uint8_t b[2]; if (!take(b, 2)) return false; v = uint16_t(b[0] | (b[1] << 8)); return true; }
    bool u32(uint32_t &v)
    {
        uint8_t b[4];
        if (!take(b, 4)) return false;
        v = uint32_t(b[0]) | (uint32_t(b[1]) << 8) | (uint32_t(b[2]) << 16) | (uint32_t(b[3]) << 24);
        return true;
    }
    bool bytes(size_t n, std::vector<uint8_t> &out)
    {
        if (pos_ + n > size_) return false;
        out.insert(out.end(), data_ + pos_, data_ + pos_ + n);
        pos_ += n;
        return true;
    }
    size_t position() const { return pos_; }

private:
    bool take(void *dst, size_t n)
    {
        if (pos_ + n > size_) return false;
        std::memcpy(dst, data_ + pos_, n);
        pos_ += n;
        return true;
    }
    const uint8_t *data_;
    size_t size_;
    size_t pos_ = 0;
};

int32_t read_element(const uint8_t *p, ElementType type)
{
    if (type == ElementType::Int8) return int8_t(p[0]);
    return int16_t(uint16_t(p[0] | (p[1] << 8)));
}

}  // namespace

size_t element_size(ElementType type) { return type == ElementType::Int8 ? 1 : 2; }

size_t VectorTensor::chunk_elements() const
{
    size_t n = 1;
    for (uint32_t d : dims) n *= d;
    return n;
}

int32_t VectorTensor::value(size_t chunk_index, size_t element) const
{
    return read_element(chunk(chunk_index) + element * element_size(type), type);
}

const VectorTensor *VectorFile::find(const std::string &name) const
{
    for (const auto &t : tensors) {
        if (t.name == name) return &t;
    }
    return nullptr;
}

bool parse_vectors(const uint8_t *bytes, size_t size, VectorFile &out, std::string &error)
{
    out = VectorFile();
    if (size < 20 || std::memcmp(bytes, kMagic, 4) != 0) {
        error = "not a streaming vector file (bad magic)";
        return false;
    }
    uint32_t stored_crc = uint32_t(bytes[size - 4]) | (uint32_t(bytes[size - 3]) << 8) |
                          (uint32_t(bytes[size - 2]) << 16) | (uint32_t(bytes[size - 1]) << 24);
    if (crc32(bytes, size - 4) != stored_crc) {
        error = "CRC mismatch: the vector file is corrupted or truncated";
        return false;
    }
    Reader r(bytes + 4, size - 8);
    uint16_t version = 0, tolerance = 0;
    uint32_t n_tensors = 0;
    if (!r.u16(version) || !r.u16(tolerance) || !r.u32(out.chunks) || !r.u32(n_tensors)) {
        error = "the vector file ends inside its header";
        return false;
    }
    if (version != kVersion) {
        error = "vector format version " + std::to_string(version) + ", this reader knows 1";
        return false;
    }
    out.tolerance_lsb = tolerance;
    for (uint32_t i = 0; i < n_tensors; ++i) {
        VectorTensor t;
        uint16_t name_length = 0;
        uint8_t role = 0, type = 0, exponent = 0, rank = 0;
        std::vector<uint8_t> name;
        if (!r.u16(name_length) || !r.bytes(name_length, name) || !r.u8(role) || !r.u8(type) || !r.u8(exponent) ||
            !r.u8(rank)) {
            error = "the vector file ends inside its tensor table";
            return false;
        }
        if (type != 1 && type != 2) {
            error = "tensor " + std::string(name.begin(), name.end()) + ": unknown element type " + std::to_string(type);
            return false;
        }
        t.name.assign(name.begin(), name.end());
        t.role = Role(role);
        t.type = ElementType(type);
        t.exponent = int8_t(exponent);
        t.dims.resize(rank);
        for (auto &d : t.dims) {
            if (!r.u32(d)) {
                error = "the vector file ends inside its tensor table";
                return false;
            }
        }
        out.tensors.push_back(std::move(t));
    }
    for (uint32_t c = 0; c < out.chunks; ++c) {
        for (auto &t : out.tensors) {
            if (!r.bytes(t.chunk_bytes(), t.data)) {
                error = "the vector file ends inside its data";
                return false;
            }
        }
    }
    if (r.position() != size - 8) {
        error = "unexplained bytes after the data";
        return false;
    }
    return true;
}

bool parse_state_pairs(const std::string &json, std::vector<std::pair<std::string, std::string>> &out,
                       std::string &error)
{
    // A deliberately small reader for one shape: a list of lists of two plain strings.
    out.clear();
    std::vector<std::string> strings;
    int depth = 0;
    for (size_t i = 0; i < json.size(); ++i) {
        char ch = json[i];
        if (ch == '[') {
            if (++depth > 2) break;
        } else if (ch == ']') {
            if (depth == 2 && strings.size() != 2) {
                error = "state_pairs: every pair must hold two names";
                return false;
            }
            if (depth == 2) {
                out.emplace_back(strings[0], strings[1]);
                strings.clear();
            }
            --depth;
        } else if (ch == '"') {
            size_t end = json.find('"', i + 1);
            if (end == std::string::npos || json.find('\\', i + 1) < end) {
                error = "state_pairs: unterminated or escaped name";
                return false;
            }
            strings.push_back(json.substr(i + 1, end - i - 1));
            i = end;
        } else if (ch != ',' && ch != ' ' && ch != '\n') {
            error = std::string("state_pairs: unexpected character '") + ch + "'";
            return false;
        }
    }
    if (depth != 0) {
        error = "state_pairs: not a list of [output, input] pairs";
        return false;
    }
    return true;
}

uint64_t LatencyStats::min_us() const
{
    return samples_us.empty() ? 0 : *std::min_element(samples_us.begin(), samples_us.end());
}

uint64_t LatencyStats::max_us() const
{
    return samples_us.empty() ? 0 : *std::max_element(samples_us.begin(), samples_us.end());
}

uint64_t LatencyStats::median_us() const
{
    if (samples_us.empty()) return 0;
    std::vector<uint64_t> sorted(samples_us);
    std::sort(sorted.begin(), sorted.end());
    size_t n = sorted.size();
    return n % 2 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
}

double LatencyStats::real_time_factor(uint32_t chunk_frames, double frames_per_second) const
{
    double audio_us = 1e6 * chunk_frames / frames_per_second;
    return audio_us > 0 ? double(median_us()) / audio_us : 0.0;
}

std::string describe(const Mismatch &m)
{
    return "chunk " + std::to_string(m.chunk) + ", tensor " + m.tensor + ", index " + std::to_string(m.index) +
        ": got " + std::to_string(m.got) + ", want " + std::to_string(m.want);
}

namespace {

bool bind(StreamingPort &port, const VectorTensor &t, bool is_input, TensorRef &ref, std::string &error)
{
    bool found = is_input ? port.input(t.name, ref) : port.output(t.name, ref);
    if (!found) {
        error = "the model has no " + std::string(is_input ? "input" : "output") + " '" + t.name + "'";
        return false;
    }
    if (ref.type != t.type || ref.bytes != t.chunk_bytes()) {
        error = "tensor '" + t.name + "': the model holds " + std::to_string(ref.bytes) + " bytes of int" +
            (ref.type == ElementType::Int8 ? "8" : "16") + ", the vectors " + std::to_string(t.chunk_bytes()) +
            " bytes of int" + (t.type == ElementType::Int8 ? "8" : "16");
        return false;
    }
    if (ref.exponent != t.exponent) {
        error = "tensor '" + t.name + "': exponent " + std::to_string(ref.exponent) + " in the model, " +
            std::to_string(t.exponent) + " in the vectors (model and vectors from different exports?)";
        return false;
    }
    return true;
}

}  // namespace

StreamResult run_stream(StreamingPort &port, const VectorFile &vectors,
                        const std::vector<std::pair<std::string, std::string>> &state_pairs)
{
    StreamResult result;
    std::vector<std::pair<const VectorTensor *, TensorRef>> inputs, outputs;
    for (const auto &t : vectors.tensors) {
        TensorRef ref;
        if (!bind(port, t, t.role == Role::Input, ref, result.error)) return result;
        (t.role == Role::Input ? inputs : outputs).emplace_back(&t, ref);
    }
    std::vector<std::pair<TensorRef, TensorRef>> copies;  // state output -> state input
    for (const auto &pair : state_pairs) {
        TensorRef out, in;
        if (!port.output(pair.first, out) || !port.input(pair.second, in)) {
            result.error = "state pair " + pair.first + " -> " + pair.second + " is not an output/input of the model";
            return result;
        }
        if (out.bytes != in.bytes || out.type != in.type || out.exponent != in.exponent) {
            result.error = "state " + pair.first + " and " + pair.second + " differ in size, type or exponent";
            return result;
        }
        std::memset(in.data, 0, in.bytes);
        copies.emplace_back(out, in);
    }
    for (uint32_t c = 0; c < vectors.chunks; ++c) {
        for (auto &in : inputs) std::memcpy(in.second.data, in.first->chunk(c), in.second.bytes);
        uint64_t start = port.now_us();
        port.run();
        result.latency.samples_us.push_back(port.now_us() - start);
        for (auto &out : outputs) {
            const auto *got = static_cast<const uint8_t *>(out.second.data);
            result.outputs.insert(result.outputs.end(), got, got + out.second.bytes);
            size_t size = element_size(out.first->type);
            for (size_t i = 0; i < out.first->chunk_elements(); ++i) {
                int32_t value = read_element(got + i * size, out.first->type);
                int32_t want = out.first->value(c, i);
                if (std::abs(value - want) > vectors.tolerance_lsb) {
                    if (!result.has_mismatch) {
                        result.has_mismatch = true;
                        result.first_mismatch = {c, out.first->name, i, value, want};
                    }
                    ++result.differing_values;
                }
            }
        }
        for (auto &copy : copies) std::memcpy(copy.second.data, copy.first.data, copy.first.bytes);
    }
    result.passed = result.error.empty() && !result.has_mismatch;
    return result;
}

}  // namespace stream_check
