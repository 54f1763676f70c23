#include "stream_check.hpp"

#include <algorithm>
#include <array>
#include <cstring>

namespace stream_check {

namespace {

constexpr char kMagic[4] = {'E', 'S', 'V', '1'};
constexpr uint16_t kVersion = 2;  // 2: the export id after the header

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
        if (n > size_ - pos_) return false;  // never pos_ + n: a damaged size could wrap around
        out.insert(out.end(), data_ + pos_, data_ + pos_ + n);
        pos_ += n;
        return true;
    }
    size_t position() const { return pos_; }
    size_t remaining() const { return size_ - pos_; }

private:
    bool take(void *dst, size_t n)
    {
        if (n > size_ - pos_) return false;
        std::memcpy(dst, data_ + pos_, n);
        pos_ += n;
        return true;
    }
    const uint8_t *data_;
    size_t size_;
    size_t pos_ = 0;
};

constexpr char kPackageMagic[4] = {'P', 'D', 'L', '3'};
constexpr size_t kPackageHeaderBytes = 60;  // magic, version[16], package size, sha256[32], model count
constexpr size_t kEspdlHeaderBytes = 16;    // "EDL2", encryption mode, FlatBuffer size, padding

uint32_t le32(const uint8_t *p)
{
    return uint32_t(p[0]) | (uint32_t(p[1]) << 8) | (uint32_t(p[2]) << 16) | (uint32_t(p[3]) << 24);
}

}  // namespace

uint32_t crc32(const uint8_t *data, size_t size, uint32_t crc)
{
    static const std::array<uint32_t, 256> table = [] {
        std::array<uint32_t, 256> t{};
        for (uint32_t i = 0; i < 256; ++i) {
            uint32_t c = i;
            for (int bit = 0; bit < 8; ++bit) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
            t[i] = c;
        }
        return t;
    }();
    crc = ~crc;
    for (size_t i = 0; i < size; ++i) crc = (crc >> 8) ^ table[(crc ^ data[i]) & 0xFFu];
    return ~crc;
}

bool find_packed_model(const uint8_t *package, size_t size, const std::string &name, PackedModel &out,
                       std::string &error)
{
    if (size < kPackageHeaderBytes || std::memcmp(package, kPackageMagic, 4) != 0) {
        error = "the packed models are not an ESP-DL PDL3 package (esp-dl >= 3.3.7 packs PDL3)";
        return false;
    }
    uint32_t declared = le32(package + 20), count = le32(package + 56);
    if (declared > size || (size - kPackageHeaderBytes) / 12 < count) {
        error = "the PDL3 package is truncated";
        return false;
    }
    for (uint32_t i = 0; i < count; ++i) {
        const uint8_t *entry = package + kPackageHeaderBytes + 12 * i;
        uint32_t offset = le32(entry), name_offset = le32(entry + 4), name_length = le32(entry + 8);
        if (name_offset > declared || name_length > declared - name_offset) break;
        if (std::string(reinterpret_cast<const char *>(package + name_offset), name_length) != name) continue;
        if (offset > declared || declared - offset < kEspdlHeaderBytes) break;
        size_t file_size = kEspdlHeaderBytes + le32(package + offset + 8);
        if (file_size > declared - offset) break;
        out = {package + offset, file_size};
        return true;
    }
    error = "the PDL3 package holds no intact '" + name + "'";
    return false;
}

bool check_stamp(const uint8_t *file, size_t size, const std::string &recorded, std::string &computed,
                 std::string &error)
{
    computed.clear();
    // the FlatBuffers string: little-endian length, the characters, a terminating zero
    std::string needle(4, '\0');
    for (int i = 0; i < 4; ++i) needle[i] = char((recorded.size() >> (8 * i)) & 0xFFu);
    needle += recorded;
    needle.push_back('\0');
    const char *begin = reinterpret_cast<const char *>(file);
    const char *end = begin + size;
    const char *found = std::search(begin, end, needle.begin(), needle.end());
    if (recorded.size() != 8 || found == end || std::search(found + 1, end, needle.begin(), needle.end()) != end) {
        error = recorded.empty() ? "no espdl_stream.crc32 stamp in the model's metadata (exported before stamps?)"
                                 : "the stamp '" + recorded + "' does not occur exactly once as 8 characters";
        return false;
    }
    size_t at = size_t(found - begin) + 4;
    static const uint8_t placeholder[8] = {'0', '0', '0', '0', '0', '0', '0', '0'};
    uint32_t crc = crc32(file, at);
    crc = crc32(placeholder, 8, crc);
    crc = crc32(file + at + 8, size - at - 8, crc);
    static const char hex[] = "0123456789abcdef";
    for (int shift = 28; shift >= 0; shift -= 4) computed.push_back(hex[(crc >> shift) & 0xFu]);
    if (computed != recorded) {
        error = "CRC-32 " + computed + ", the exporter recorded " + recorded + ": the model is corrupted";
        return false;
    }
    return true;
}

bool check_packed_model(const uint8_t *package, size_t size, const std::string &name, const std::string &recorded,
                        std::string &verdict)
{
    PackedModel model;
    std::string computed, error;
    bool ok = find_packed_model(package, size, name, model, error) &&
        check_stamp(model.data, model.size, recorded, computed, error);
    verdict = ok ? "INTEGRITY PASS: " + name + ", " + std::to_string(model.size) + " bytes, CRC-32 " + computed
                 : "INTEGRITY FAIL: " + name + ": " + error;
    return ok;
}

size_t element_size(ElementType type) { return type == ElementType::Int8 ? 1 : 2; }

int32_t read_element(const uint8_t *p, ElementType type)
{
    if (type == ElementType::Int8) return int8_t(p[0]);
    return int16_t(uint16_t(p[0] | (p[1] << 8)));
}

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
        error = "vector format version " + std::to_string(version) + ", this reader knows " + std::to_string(kVersion) +
                ": re-export the model";
        return false;
    }
    out.tolerance_lsb = tolerance;
    uint16_t id_length = 0;
    std::vector<uint8_t> id;
    if (!r.u16(id_length) || !r.bytes(id_length, id)) {
        error = "the vector file ends inside its export id";
        return false;
    }
    out.export_id.assign(id.begin(), id.end());
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
    // Every size checked by division before it is multiplied: on the chip size_t is 32 bits, and damaged dimensions
    // could wrap a product around to a small, plausible count.
    const uint64_t available = r.remaining();
    uint64_t data_bytes = 0;
    auto product_fits = [](uint64_t a, uint64_t b, uint64_t limit) { return b == 0 || a <= limit / b; };
    for (const auto &t : out.tensors) {
        uint64_t bytes = element_size(t.type);
        bool fits = true;
        for (uint32_t d : t.dims) {
            fits = fits && product_fits(bytes, d, available);
            if (fits) bytes *= d;
        }
        if (!fits || !product_fits(bytes, out.chunks, available - data_bytes)) {
            error = "the vector file's sizes do not add up to its data";
            return false;
        }
        data_bytes += bytes * out.chunks;
    }
    if (data_bytes != available) {
        error = "the vector file's sizes do not add up to its data";
        return false;
    }
    for (uint32_t c = 0; c < out.chunks; ++c) {
        for (auto &t : out.tensors) r.bytes(t.chunk_bytes(), t.data);  // the sizes add up: checked above
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

bool StateCopyBack::bind(StreamingPort &port, const std::vector<std::pair<std::string, std::string>> &state_pairs,
                         std::string &error)
{
    copies_.clear();
    size_t state_bytes = 0;
    for (const auto &pair : state_pairs) {
        TensorRef out, in;
        if (!port.output(pair.first, out) || !port.input(pair.second, in)) {
            error = "state pair " + pair.first + " -> " + pair.second + " is not an output/input of the model";
            return false;
        }
        if (out.bytes != in.bytes || out.type != in.type || out.exponent != in.exponent) {
            error = "state " + pair.first + " and " + pair.second + " differ in size, type or exponent";
            return false;
        }
        copies_.emplace_back(out, in);
        state_bytes += out.bytes;
    }
    staged_.assign(state_bytes, 0);
    return true;
}

void StateCopyBack::zero()
{
    for (auto &copy : copies_) std::memset(copy.second.data, 0, copy.second.bytes);
}

void StateCopyBack::copy()
{
    // ESP-DL's memory planner frees a graph input after its last reader and gives its bytes to later
    // tensors, so one pair's state input may share bytes with another pair's state output. Copying
    // pair by pair could then overwrite an output before it is read: read every output first.
    uint8_t *cursor = staged_.data();
    for (auto &copy : copies_) {
        std::memcpy(cursor, copy.first.data, copy.first.bytes);
        cursor += copy.first.bytes;
    }
    cursor = staged_.data();
    for (auto &copy : copies_) {
        std::memcpy(copy.second.data, cursor, copy.second.bytes);
        cursor += copy.second.bytes;
    }
}

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
    StateCopyBack states;
    if (!states.bind(port, state_pairs, result.error)) return result;
    states.zero();
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
        states.copy();
    }
    result.passed = result.error.empty() && !result.has_mismatch;
    return result;
}

}  // namespace stream_check
