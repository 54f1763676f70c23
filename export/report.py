"""report.html: what one export proved and measured, as a page a person reads, beside report.json.

One self-contained file (the plots are PNGs made with matplotlib, embedded): the verdict table, the accuracy with
its intervals, the per-layer error chart and table, the test clip's outputs over time (float, quantized offline,
quantized streaming chunk by chunk, both from the written files in the ESP-DL emulator), the confusion matrices,
the layers mixed precision raised, and the stage timings. Everything shown comes from report.json, except the test
clip's outputs.
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPORT_PAGE = "report.html"
WIDTH_COLOURS = {8: "#4477aa", 16: "#ee6677"}
RESULT_COLOURS = {"PASS": "#228833", "WARN": "#cc7700", "FAIL": "#cc3311"}


@dataclass
class ClipTrace:
    """The test clip's outputs over time, [channels, frames] each (every other axis folded into channels),
    dequantized."""

    float: np.ndarray
    offline: np.ndarray
    streaming: np.ndarray
    frames_per_chunk: int  # output frames per streaming chunk
    seconds_per_frame: float  # of the output
    labels: tuple[str, ...] = ()  # a name per channel, if it has one


def _png(figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90, metadata={"Software": None})  # laid out once: constrained
    return base64.b64encode(buffer.getvalue()).decode()


def _figures(report: dict, trace: ClipTrace | None) -> dict[str, str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    images = {}
    rows = report.get("layer_errors") or []
    if rows:
        fig, ax = plt.subplots(figsize=(9, 0.28 * len(rows) + 1.6), layout="constrained")
        y = np.arange(len(rows))
        finite = [v for r in rows for v in (r["graphwise_snr_db"], r["layerwise_snr_db"]) if np.isfinite(v)]
        cap = max(finite, default=60.0) + 5
        graph = [min(r["graphwise_snr_db"], cap) for r in rows]
        layer = [min(r["layerwise_snr_db"], cap) for r in rows]
        colours = [WIDTH_COLOURS.get(r["bits"], "grey") for r in rows]
        ax.barh(y - 0.2, graph, height=0.4, color=colours, label="graphwise (quantized inputs all the way)")
        ax.barh(y + 0.2, layer, height=0.4, color=colours, alpha=0.45, label="layerwise (float inputs)")
        ax.set_yticks(y, [f"{r['layer']} ({r['op_type']}, int{r['bits']})" for r in rows], fontsize=7)
        ax.invert_yaxis()
        ax.set_xlabel("SNR against the float model (dB), higher is better")
        fig.legend(fontsize=7, loc="outside upper center", ncol=2, frameon=False)
        ax.grid(axis="x", alpha=0.3)
        images["layers"] = _png(fig)
        plt.close(fig)
    if trace is not None:
        order = np.argsort(-trace.float.mean(axis=1))[:3]  # the channels the float model favours most
        t = (np.arange(trace.float.shape[1]) + 1) * trace.seconds_per_frame
        fig, ax = plt.subplots(figsize=(8, 4.2), layout="constrained")
        for k, channel in enumerate(order):
            colour = f"C{k}"
            name = trace.labels[channel] if channel < len(trace.labels) else f"output {channel}"
            ax.plot(t, trace.float[channel], color=colour, lw=2, alpha=0.5, label=f"{name}: float")
            ax.plot(t, trace.offline[channel], color=colour, lw=1, ls="--", label=f"{name}: quantized offline")
            ax.plot(t, trace.streaming[channel], color=colour, ls="none", marker=".", ms=4,
                    label=f"{name}: quantized streaming")
        for boundary in np.arange(trace.frames_per_chunk, trace.float.shape[1], trace.frames_per_chunk):
            ax.axvline(boundary * trace.seconds_per_frame + trace.seconds_per_frame / 2, color="grey", lw=0.5, alpha=0.4)
        ax.set_xlabel("time (s); grey lines: chunk boundaries")
        ax.set_ylabel("output")
        ax.set_title("The test clip's outputs over time (quantized: the written files in the emulator)")
        fig.legend(fontsize=6, ncol=3, loc="outside lower center")
        images["clip"] = _png(fig)
        plt.close(fig)
    accuracy = report.get("accuracy")
    if accuracy:
        top, intervals = accuracy["top1_percent"], accuracy["top1_interval_95_percent"]
        fig, (left, right) = plt.subplots(1, 2, figsize=(8, 2.8), gridspec_kw={"width_ratios": [3, 2]}, layout="constrained")
        names = ["float", "quantized_offline", "quantized_streaming"]
        values = [top[n] for n in names]
        bounds = [intervals.get(n, intervals["quantized_offline"]) for n in names]
        errors = np.array([[v - b[0] for v, b in zip(values, bounds)], [b[1] - v for v, b in zip(values, bounds)]])
        left.bar(["float", f"{accuracy['width']} offline", f"{accuracy['width']} streaming"], values, yerr=errors,
                 capsize=4, color=["#999999", "#4477aa", "#66ccee"])
        left.set_ylim(max(0.0, min(b[0] for b in bounds) - 5), min(100.0, max(b[1] for b in bounds) + 3))
        left.set_ylabel("top-1 accuracy (%)")
        left.set_title(f"{accuracy['clips']} held-out clips, 95% Wilson intervals", fontsize=9)
        cost, (low, high) = accuracy["quantization_cost_points"], accuracy["quantization_cost_interval_95_points"]
        target = accuracy["quantization_target_points"]
        right.errorbar([cost], [0], xerr=[[cost - low], [high - cost]], fmt="o", color="#4477aa", capsize=5)
        right.axvline(target, color=RESULT_COLOURS["WARN"], ls="--", label=f"target {target}")
        right.axvline(0, color="grey", lw=0.5)
        right.set_yticks([])
        right.set_xlabel("cost: float minus quantized (points)")
        right.set_title("cost, 95% paired interval", fontsize=9)
        right.legend(fontsize=7)
        images["accuracy"] = _png(fig)
        plt.close(fig)
        classes = accuracy["classes"]
        fig, axes = plt.subplots(1, 2, figsize=(9, 4.2), layout="constrained")
        for ax, key, title in ((axes[0], "confusion_float", "float"), (axes[1], "confusion_quantized",
                                                                        f"{accuracy['width']} streaming (written files)")):
            matrix = np.asarray(accuracy[key])
            ax.imshow(matrix, cmap="Blues")
            for (i, j), count in np.ndenumerate(matrix):
                if count:
                    ax.text(j, i, str(count), ha="center", va="center", fontsize=6,
                            color="white" if count > matrix.max() / 2 else "black")
            ax.set_xticks(range(len(classes)), classes, rotation=90, fontsize=7)
            ax.set_yticks(range(len(classes)), classes, fontsize=7)
            ax.set_xlabel("predicted")
            ax.set_ylabel("true")
            ax.set_title(title, fontsize=9)
        images["confusion"] = _png(fig)
        plt.close(fig)
    timings = {k: v for k, v in report["timings_s"].items() if k != "total"}
    fig, ax = plt.subplots(figsize=(8, 0.3 * len(timings) + 1), layout="constrained")
    ax.barh(range(len(timings)), list(timings.values()), color="#999999")
    ax.set_yticks(range(len(timings)), list(timings), fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel(f"seconds (total {report['timings_s']['total']:.1f} s)")
    images["timings"] = _png(fig)
    plt.close(fig)
    return images


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _snr(value: float) -> str:
    return "exact" if not np.isfinite(value) else f"{value:.1f}"


def render(report: dict, trace: ClipTrace | None) -> str:
    images = _figures(report, trace)
    config, model = report["config"], report["model"]
    e = html.escape
    checks = report["checks"]
    results = [c.get("result", "PASS" if c["passed"] else "FAIL") for c in checks]
    verdict = "FAILED" if "FAIL" in results else "ALL PASS" + (f", {results.count('WARN')} WARN" if "WARN" in results else "")
    parts = [
        f"<h1>{e(model['name'])} &rarr; {e(config['target'])} {e(report['width'])}</h1>",
        f"<p class=verdict style='color:{RESULT_COLOURS['FAIL' if 'FAIL' in results else 'WARN' if 'WARN' in results else 'PASS']}'>"
        f"{e(verdict)}</p>",
        f"<p>chunk {config['chunk']} frames, offline {config['frames']} frames; quantization: {e(report['quantization'])}; "
        f"esp-ppq {e(report['tool']['esp_ppq'])}, espdl-stream {e(report['tool']['espdl_stream'])}; "
        f"{report['timings_s']['total']:.1f} s.</p>",
        "<h2>Verdict</h2>",
        _table(["check", "result", "detail"],
               [[e(c["name"]), f"<b style='color:{RESULT_COLOURS[r]}'>{r}</b>", e(c["detail"])] for c, r in zip(checks, results)]),
    ]
    accuracy = report.get("accuracy")
    if accuracy:
        top, (low, high) = accuracy["top1_percent"], accuracy["quantization_cost_interval_95_points"]
        parts += [
            "<h2>Accuracy</h2>",
            f"<p>{accuracy['clips']} held-out clips: float {top['float']}%, {e(accuracy['width'])} offline "
            f"{top['quantized_offline']}%, streaming {top['quantized_streaming']}%. Cost "
            f"<b>{accuracy['quantization_cost_points']:+.2f} points</b> (95% interval {low:+.2f} to {high:+.2f}; "
            f"{e(accuracy['interval_method'])}); target {accuracy['quantization_target_points']}. "
            f"{accuracy['float_right_quantized_wrong']} clips the float model gets right and the quantized one wrong, "
            f"{accuracy['float_wrong_quantized_right']} the other way. {e(accuracy['source'])}.</p>",
            f"<img src='data:image/png;base64,{images['accuracy']}'>",
            f"<img src='data:image/png;base64,{images['confusion']}'>",
        ]
    if "clip" in images:
        parts += ["<h2>The test clip</h2>", f"<img src='data:image/png;base64,{images['clip']}'>"]
    rows = report.get("layer_errors") or []
    if rows:
        parts += [
            "<h2>Error per layer</h2>",
            f"<p>On {config['verify_clips']} verification clips, the written offline file in the ESP-DL emulator against "
            "the float ONNX model. Graphwise: the file as it runs, each layer's output with the error of every layer before "
            "it. Layerwise: each layer given the float model's inputs (rounded to the file's exponents).</p>",
            f"<img src='data:image/png;base64,{images['layers']}'>",
            _table(["layer", "op", "width", "graphwise SNR dB", "layerwise SNR dB"],
                   [[e(r["layer"]), e(r["op_type"]), f"int{r['bits']}", _snr(r["graphwise_snr_db"]), _snr(r["layerwise_snr_db"])]
                    for r in rows]),
        ]
    mixed = report.get("mixed_precision")
    if mixed:
        parts += [
            "<h2>Mixed precision</h2>",
            f"<p>{e(mixed['method'])}</p><p>Layers at 16 bits: "
            f"{e(', '.join(mixed['int16_layers']) or 'none (int8 meets the target)')}.</p>",
            _table(["layers at 16 bits", "cost (points)", "output SNR dB", "kept"],
                   [[e(", ".join(t["layers"]) or "none")] + ([f"{t['cost_points']:+.2f}", _snr(t["output_snr_db"]),
                     "yes" if t["kept"] else "no"] if not t["refused"] else ["", "", e(f"no: {t['refused']}")])
                    for t in mixed["trials"]]),
        ]
    parts += ["<h2>Stage timings</h2>", f"<img src='data:image/png;base64,{images['timings']}'>"]
    style = ("body{font-family:sans-serif;max-width:62em;margin:2em auto;color:#222}table{border-collapse:collapse;"
             "font-size:0.85em;margin:0.5em 0}td,th{border:1px solid #ccc;padding:0.2em 0.5em;text-align:left}"
             ".verdict{font-size:1.4em;font-weight:bold}img{max-width:100%;display:block;margin:0.5em 0}")
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{e(model['name'])} {e(config['target'])} "
            f"{e(report['width'])}</title><style>{style}</style></head><body>{''.join(parts)}</body></html>\n")


def write_page(report: dict, trace: ClipTrace | None, path: Path) -> None:
    Path(path).write_text(render(report, trace))
