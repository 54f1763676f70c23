// Host test of the firmware's portable core: the same run_stream() the board uses, driven by an
// oracle in place of ESP-DL. The oracle holds the true outputs of every chunk (a vector file the
// exporter wrote) and answers a chunk only if the runner fed it exactly the right input and the
// right states (zero at the start and after a reset, else the previous chunk's state outputs).
//
//   host_check TRUTH.bin EXPECTED.bin STATE_PAIRS_JSON FRAMES_PER_SECOND [--no-copy-back] [--layout FILE]
//
// With --layout the tensors live where ESP-DL's memory planner puts them (memory_plan.py), sharing
// bytes as on the chip: a state input whose life has ended is overwritten by later tensors during run().
// Without it every graph input and output has a buffer of its own.
// EXPECTED.bin is what the runner compares against (normally TRUTH.bin itself; a test edits it to
// prove a wrong expectation is reported). Exit 0: every line PASS; 1: a check failed; 2: bad input.
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "oracle_port.hpp"

using namespace host_test;

int main(int argc, char **argv)
{
    if (argc < 5) {
        std::printf("usage: host_check TRUTH.bin EXPECTED.bin STATE_PAIRS_JSON FRAMES_PER_SECOND [--no-copy-back] [--layout FILE]\n");
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
    bool copy_back = true;
    std::vector<Placement> layout;
    for (int i = 5; i < argc; ++i) {
        if (std::strcmp(argv[i], "--no-copy-back") == 0) {
            copy_back = false;
        } else if (std::strcmp(argv[i], "--layout") == 0 && i + 1 < argc) {
            if (!read_layout(argv[++i], layout)) {
                std::printf("ERROR: cannot read the layout %s\n", argv[i]);
                return 2;
            }
        } else {
            std::printf("ERROR: unknown argument %s\n", argv[i]);
            return 2;
        }
    }
    if (layout.empty()) layout = separate_buffers(truth, pairs);
    const VectorTensor *x = truth.find("x");
    uint32_t chunk_frames = x && x->dims.size() == 3 ? x->dims[1] : 0;

    OraclePort port(truth, pairs, layout);
    if (!port.covers(pairs, error)) {
        std::printf("ERROR: %s\n", error.c_str());
        return 2;
    }
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
