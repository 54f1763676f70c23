// The host tests' stand-in for ESP-DL: an oracle that holds the true outputs of every chunk (a vector file the
// exporter wrote) and answers a chunk only if it was fed exactly the right input and the right states (zero at
// the start and after a reset, else the previous chunk's state outputs). Optionally its tensors live where
// ESP-DL's memory planner puts them (memory_plan.py), sharing bytes as on the chip. Used by host_check (the
// vector self-test) and kws_check (the keyword demo).
#pragma once

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>

#include "stream_check.hpp"

namespace host_test {

using namespace stream_check;


inline bool read_file(const char *path, std::vector<uint8_t> &out)
{
    std::ifstream f(path, std::ios::binary);
    if (!f) return false;
    out.assign(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
    return true;
}

// Where ESP-DL keeps each tensor: `name offset bytes step` lines (firmware/host_test/memory_plan.py),
// step being the node that writes the tensor, -1 for a graph input.
struct Placement {
    std::string name;
    size_t offset = 0, bytes = 0;
    int step = -1;
};

inline bool read_layout(const char *path, std::vector<Placement> &out)
{
    std::ifstream f(path);
    Placement p;
    while (f >> p.name >> p.offset >> p.bytes >> p.step) out.push_back(p);
    return f.eof() && !out.empty();
}

// Every graph input and output in a buffer of its own, one after the other: what the oracle used to do.
inline std::vector<Placement> separate_buffers(const VectorFile &truth, const std::vector<std::pair<std::string, std::string>> &pairs)
{
    std::vector<Placement> layout;
    size_t offset = 0;
    auto place = [&](const std::string &name, size_t bytes, int step) {
        layout.push_back({name, offset, bytes, step});
        offset += bytes;
    };
    for (const auto &t : truth.tensors) place(t.name, t.chunk_bytes(), t.role == Role::Input ? -1 : 0);
    for (const auto &pair : pairs) {
        const VectorTensor *out = truth.find(pair.first);
        if (out) place(pair.second, out->chunk_bytes(), -1);
    }
    return layout;
}

class OraclePort : public StreamingPort {
public:
    OraclePort(const VectorFile &truth, const std::vector<std::pair<std::string, std::string>> &pairs,
               std::vector<Placement> layout)
        : truth_(truth), layout_(std::move(layout))
    {
        size_t arena = 0;
        for (const auto &p : layout_) arena = std::max(arena, p.offset + p.bytes);
        arena_.assign(arena, 0);
        for (const auto &pair : pairs) state_of_input_[pair.second] = pair.first;
    }

    bool input(const std::string &name, TensorRef &ref) override { return lookup(name, true, ref); }
    bool output(const std::string &name, TensorRef &ref) override { return lookup(name, false, ref); }

    void run() override
    {
        bool fed_right = chunk_ < truth_.chunks;
        for (const auto &p : layout_) {
            if (p.step >= 0) continue;
            std::vector<uint8_t> want(p.bytes, 0);
            auto state = state_of_input_.find(p.name);
            if (state == state_of_input_.end()) {
                const VectorTensor *t = truth_.find(p.name);
                want.assign(t->chunk(chunk_), t->chunk(chunk_) + t->chunk_bytes());
            } else if (chunk_ > 0) {
                const VectorTensor *t = truth_.find(state->second);
                want.assign(t->chunk(chunk_ - 1), t->chunk(chunk_ - 1) + t->chunk_bytes());
            }
            if (fed_right && std::memcmp(arena_.data() + p.offset, want.data(), p.bytes) != 0) {
                if (violations == 0) std::printf("ORACLE: chunk %u was fed a wrong '%s'\n", chunk_, p.name.c_str());
                fed_right = false;
                ++violations;
            }
        }
        // the nodes write their tensors in order, over the bytes of tensors whose life has ended: graph
        // outputs get the chip's answer (garbage when fed wrongly), intermediate tensors a scribble
        for (const auto &p : layout_) {
            if (p.step < 0) continue;
            uint8_t *bytes = arena_.data() + p.offset;
            const VectorTensor *t = truth_.find(p.name);
            if (t && t->role == Role::Output && fed_right) {
                std::memcpy(bytes, t->chunk(chunk_), p.bytes);
            } else {
                std::memset(bytes, t ? 0x5A : 0xC3 ^ p.step, p.bytes);
            }
        }
        ++chunk_;
        clock_us_ += 1000 + 37 * (chunk_ % 5);  // a deterministic, uneven "compute time"
    }

    void reset() override { chunk_ = 0; }
    uint64_t now_us() override { return clock_us_; }

    // every graph input and output has a place, of the size the vectors say
    bool covers(const std::vector<std::pair<std::string, std::string>> &pairs, std::string &error) const
    {
        auto check = [&](const std::string &name, size_t bytes) {
            const Placement *p = find(name);
            if (p && p->bytes == bytes) return true;
            error = "layout: '" + name + "' " + (p ? "has " + std::to_string(p->bytes) + " bytes, the vectors " +
                                                         std::to_string(bytes) : std::string("is missing"));
            return false;
        };
        for (const auto &t : truth_.tensors) {
            if (!check(t.name, t.chunk_bytes())) return false;
        }
        for (const auto &p : layout_) {
            bool known = p.step >= 0 || (truth_.find(p.name) && truth_.find(p.name)->role == Role::Input) ||
                state_of_input_.count(p.name);
            if (!known) {
                error = "layout: graph input '" + p.name + "' is neither in the vectors nor a state input";
                return false;
            }
        }
        for (const auto &pair : pairs) {
            const VectorTensor *out = truth_.find(pair.first);
            if (out && !check(pair.second, out->chunk_bytes())) return false;
        }
        return true;
    }

    int violations = 0;

private:
    const Placement *find(const std::string &name) const
    {
        for (const auto &p : layout_) {
            if (p.name == name) return &p;
        }
        return nullptr;
    }

    bool lookup(const std::string &name, bool is_input, TensorRef &ref)
    {
        const Placement *p = find(name);
        if (!p || (p->step < 0) != is_input) return false;
        auto state = state_of_input_.find(name);
        const VectorTensor *t = truth_.find(state == state_of_input_.end() ? name : state->second);
        if (!t) return false;
        ref = {arena_.data() + p->offset, p->bytes, t->type, t->exponent};
        return true;
    }

    const VectorFile &truth_;
    std::vector<Placement> layout_;
    std::vector<uint8_t> arena_;
    std::map<std::string, std::string> state_of_input_;
    uint32_t chunk_ = 0;
    uint64_t clock_us_ = 0;
};

inline bool load(const char *path, VectorFile &out)
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

}  // namespace host_test
