"""Presenting a benchmark: the CPU it ran on, known accuracies, the table and the Pareto plot."""

from __future__ import annotations

import json
from pathlib import Path

from kft.errors import KftError
from kft.rundir import METRICS as RUN_METRICS

EXPORT_REPORT = "export_report.json"


def header(cpu: dict, runtimes: list[str], images: str, runs: int, warmup: int) -> str:
    usable = f", {cpu['usable_cores']} usable (sched_getaffinity)" if cpu["usable_cores"] is not None else ""
    return (f"CPU: {cpu['cpu']} ({cpu['cores']} cores{usable}); runtime: {'; '.join(runtimes)}\n"
            f"batch 1, {runs} timed runs after {warmup} warm-up, inputs: {images}")


def accuracy_for(model_path) -> tuple[float | None, str | None]:
    """The known test accuracy of a model and the file it came from, else (None, None).

    ``model_<quant>.tflite``: the row of a sibling ``export_report.json`` (written by
    ``kft export``) whose ``file`` is this file's name (or, failing that, whose
    ``variant`` is ``<quant>``). ``*.keras``: ``test_accuracy`` of a sibling
    ``metrics.json`` (a run folder).
    """
    path = Path(model_path)
    if path.suffix.lower() == ".tflite":
        source = path.parent / EXPORT_REPORT
        report = _read_json(source)
        rows = report.get("rows") if isinstance(report, dict) else None
        rows = [r for r in rows if isinstance(r, dict)] if isinstance(rows, list) else []
        variant = path.stem.removeprefix("model_")
        for match in (lambda r: isinstance(r.get("file"), str) and Path(r["file"]).name == path.name,
                      lambda r: r.get("variant") == variant):
            for row in rows:
                if match(row) and _is_number(row.get("accuracy")):
                    return float(row["accuracy"]), str(source)
        return None, None
    source = path.parent / RUN_METRICS
    metrics = _read_json(source)
    if isinstance(metrics, dict) and _is_number(metrics.get("test_accuracy")):
        return float(metrics["test_accuracy"]), str(source)
    return None, None


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _is_number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def format_table(records: list[dict]) -> str:
    """Aligned text table, one line per model x thread count."""
    cols = [("model", "{}"), ("threads", "{}"), ("median ms", "{:.3f}"), ("p90 ms", "{:.3f}"),
            ("min ms", "{:.3f}"), ("size", "{}"), ("MMACs", "{:.1f}"), ("GMAC/s", "{:.2f}"), ("accuracy", "{}")]
    rows = []
    for r in records:
        rows.append([r["label"], str(r["threads"]), f"{r['median_ms']:.3f}", f"{r['p90_ms']:.3f}",
                     f"{r['min_ms']:.3f}", _size(r["size_bytes"]), f"{r['macs'] / 1e6:.1f}",
                     f"{r['gmacs_per_s']:.2f}", "-" if r.get("accuracy") is None else f"{r['accuracy']:.4f}"])
    widths = [max(len(c[0]), *(len(row[i]) for row in rows)) if rows else len(c[0]) for i, c in enumerate(cols)]
    lines = ["  ".join(c[0].ljust(w) if i == 0 else c[0].rjust(w) for i, (c, w) in enumerate(zip(cols, widths)))]
    for row in rows:
        lines.append("  ".join(v.ljust(w) if i == 0 else v.rjust(w) for i, (v, w) in enumerate(zip(row, widths))))
    return "\n".join(lines)


def _size(n: int) -> str:
    return f"{n / 1e6:.2f} MB" if n >= 1e6 else f"{n / 1e3:.1f} kB"


def plot_pareto(records: list[dict], path) -> int:
    """Accuracy vs median latency, one annotated marker per model (its fastest thread count),
    the Pareto front joined. Returns how many models were drawn; draws nothing when none has accuracy."""
    best: dict[str, dict] = {}
    for r in records:
        if r.get("accuracy") is None:
            continue
        if r["model"] not in best or r["median_ms"] < best[r["model"]]["median_ms"]:
            best[r["model"]] = r
    if not best:
        return 0
    from kft.plots import _plt, save_figure

    plt = _plt()
    points = sorted(best.values(), key=lambda r: (r["median_ms"], -r["accuracy"]))
    fig, ax = plt.subplots(figsize=(10, 4.5))
    for r in points:  # a legend entry per model: labels beside close points would overlap
        ax.scatter(r["median_ms"], r["accuracy"], marker="o" if r["kind"] == "tflite" else "s", zorder=3,
                   label=f"{r['label']} ({r['threads']}t)")
    front, top = [], float("-inf")
    for r in points:
        if r["accuracy"] > top:
            front.append(r)
            top = r["accuracy"]
    ax.plot([r["median_ms"] for r in front], [r["accuracy"] for r in front], color="grey", ls="--", lw=0.8,
            label="Pareto front")
    ax.set_xscale("log")  # latencies span two orders of magnitude
    from matplotlib.ticker import FormatStrFormatter

    ax.xaxis.set_major_formatter(FormatStrFormatter("%g"))
    ax.xaxis.set_minor_formatter(FormatStrFormatter("%g"))
    ax.set_xlabel("median latency per image (ms, batch 1, log scale)")
    ax.set_ylabel("test accuracy")
    ax.set_title("accuracy vs latency (o: .tflite, s: .keras)")
    ax.margins(y=0.15)
    ax.grid(alpha=0.3, which="both")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, frameon=False)
    try:
        save_figure(fig, path)
    except (OSError, ValueError) as e:
        plt.close(fig)
        raise KftError(f"cannot write the plot {path} ({e})") from None
    return len(best)
