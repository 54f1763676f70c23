// Host test of the firmware's portable core: the same run_stream() the board uses, driven by an
// oracle in place of ESP-DL. The oracle holds the true outputs of every chunk (a vector file the
// exporter wrote) and answers a chunk only if the runner fed it exactly the right input and the
// right states (zero at the start and after a reset, else the previous chunk's state outputs).
//
//   host_check TRUTH.bin EXPECTED.bin STATE_PAIRS_JSON FRAMES_PER_SECOND [--no-copy-back]
//
// EXPECTED.bin is what the runner compares against (normally TRUTH.bin itself; a test edits it to
// prove a wrong expectation is reported). Exit 0: every line PASS; 1: a check failed; 2: bad input.
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>

#include "stream_check.hpp"

using namespace stream_check;

namespace {

bool read_file(const char *path, std::vector<uint8_t> &out)
{
    std::ifstream f(path, std::ios::binary);
    if (!f) return false;
    out.assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
    return true;
}

class OraclePort : public StreamingPort {
public:
    OraclePort(const VectorFile &truth, const std::vector<std::pair<std::string, std::string>> &pairs) : truth_(truth)
    {
        for (const auto &t : truth.tensors) {
            auto &buffer = (t.role == Role::Input ? inputs_ : outputs_)[t.name];
            buffer = {std::vector<uint8_t>(t.chunk_bytes()), &t};
        }
        for (const auto &pair : pairs) {  // a state input looks like its output
            const VectorTensor *out = truth.find(pair.first);
            if (out) inputs_[pair.second] = {std::vector<uint8_t>(out->chunk_bytes()), out};
            state_of_input_[pair.second] = pair.first;
        }
    }

    bool input(const std::string &name, TensorRef &ref) override { return lookup(inputs_, name, ref); }
    bool output(const std::string &name, TensorRef &ref) override { return lookup(outputs_, name, ref); }

    void run() override
    {
        bool fed_right = chunk_ < truth_.chunks;
        for (auto &entry : inputs_) {
            const auto &buffer = entry.second.first;
            auto state = state_of_input_.find(entry.first);
            std::vector<uint8_t> want(buffer.size(), 0);
            if (state == state_of_input_.end()) {
                const VectorTensor *t = truth_.find(entry.first);
                want.assign(t->chunk(chunk_), t->chunk(chunk_) + t->chunk_bytes());
            } else if (chunk_ > 0) {
                const VectorTensor *t = truth_.find(state->second);
                want.assign(t->chunk(chunk_ - 1), t->chunk(chunk_ - 1) + t->chunk_bytes());
            }
            if (fed_right && buffer != want) {
                if (violations == 0) std::printf("ORACLE: chunk %u was fed a wrong '%s'\n", chunk_, entry.first.c_str());
                fed_right = false;
                ++violations;
            }
        }
        for (auto &entry : outputs_) {  // the chip's answer, or garbage when fed wrongly
            auto &buffer = entry.second.first;
            if (fed_right) {
                std::memcpy(buffer.data(), entry.second.second->chunk(chunk_), buffer.size());
            } else {
                std::memset(buffer.data(), 0x5A, buffer.size());
            }
        }
        ++chunk_;
        clock_us_ += 1000 + 37 * (chunk_ % 5);  // a deterministic, uneven "compute time"
    }

    void reset() override { chunk_ = 0; }
    uint64_t now_us() override { return clock_us_; }

    int violations = 0;

private:
    using Buffers = std::map<std::string, std::pair<std::vector<uint8_t>, const VectorTensor *>>;

    static bool lookup(Buffers &buffers, const std::string &name, TensorRef &ref)
    {
        auto it = buffers.find(name);
        if (it == buffers.end()) return false;
        ref = {it->second.first.data(), it->second.first.size(), it->second.second->type, it->second.second->exponent};
        return true;
    }

    const VectorFile &truth_;
    Buffers inputs_, outputs_;
    std::map<std::string, std::string> state_of_input_;
    uint32_t chunk_ = 0;
    uint64_t clock_us_ = 0;
};

bool load(const char *path, VectorFile &out)
{
    std::vector<uint8_t> bytes;
    std::string error;
    if (!read_file(path, bytes)) {
        std::printf("ERROR: cannot read %s\n", path);
        return false;
    }
    if (!parse_vectors(bytes.data(), bytes.size(), out, error)) {
        std::printf("ERROR: %s: %s\n", path, error.c_str());
        return false;
    }
    return true;
}

}  // namespace

int main(int argc, char **argv)
{
    if (argc < 5) {
        std::printf("usage: host_check TRUTH.bin EXPECTED.bin STATE_PAIRS_JSON FRAMES_PER_SECOND [--no-copy-back]\n");
        return 2;
    }
    VectorFile truth, expected;
    if (!load(argv[1], truth) || !load(argv[2], expected)) return 2;
    std::vector<std::pair<std::string, std::string>> pairs;
    std::string error;
    if (!parse_state_pairs(argv[3], pairs, error)) {
        std::printf("ERROR: %s\n", error.c_str());
        return 2;
    }
    bool copy_back = !(argc > 5 && std::strcmp(argv[5], "--no-copy-back") == 0);
    const VectorTensor *x = truth.find("x");
    uint32_t chunk_frames = x && x->dims.size() == 3 ? x->dims[1] : 0;

    OraclePort port(truth, pairs);
    auto no_pairs = decltype(pairs)();
    StreamResult first = run_stream(port, expected, copy_back ? pairs : no_pairs);
    port.reset();
    StreamResult second = run_stream(port, expected, copy_back ? pairs : no_pairs);

    bool ok = first.passed && port.violations == 0;
    if (port.violations) std::printf("ORACLE: %d chunks were fed wrongly\n", port.violations);
    if (!first.error.empty()) std::printf("ERROR: %s\n", first.error.c_str());
    if (first.has_mismatch) {
        std::printf("first mismatch: %s (%u values outside %d LSB)\n", describe(first.first_mismatch).c_str(),
                    first.differing_values, expected.tolerance_lsb);
    }
    std::printf("STREAM %s: %u chunks, %zu tensors, %zu state pairs\n", ok ? "PASS" : "FAIL", expected.chunks,
                expected.tensors.size(), pairs.size());
    bool reset_ok = ok && second.passed && second.outputs == first.outputs;
    std::printf("RESET %s: a second pass after reset gives the same outputs\n", reset_ok ? "PASS" : "FAIL");
    double fps = std::atof(argv[4]);
    std::printf("latency us min/median/max %llu/%llu/%llu, real-time factor %.3f\n",
                (unsigned long long)first.latency.min_us(), (unsigned long long)first.latency.median_us(),
                (unsigned long long)first.latency.max_us(), first.latency.real_time_factor(chunk_frames, fps));
    return ok && reset_ok ? 0 : 1;
}
