"""``pyvmm bench``: run the classes, print the table, write JSON and a plot."""

from __future__ import annotations

import sys
from pathlib import Path


def _error(message: str) -> int:
    print(f"pyvmm: error: {message}", file=sys.stderr)
    return 2


def bench_main(
    *,
    quick: bool = False,
    json_file: Path | None = None,
    plot: Path | None = None,
    only: list[str] | None = None,
    iters: int | None = None,
    warmup: int | None = None,
    reps: int | None = None,
    list_classes: bool = False,
    hw_api: bool = False,
) -> int:
    from pyvmm.bench.classes import CLASSES
    from pyvmm.bench.hostinfo import host_info
    from pyvmm.bench.report import format_table, plot_available, to_json, write_json, write_plot
    from pyvmm.bench.run import BenchError, Params, run_all, select

    if list_classes:
        for c in CLASSES:
            need = "|".join(f.name for f in type(c.features) if f & c.features)
            print(f"{c.name:<16} {c.title:<40} {c.group.name.lower():<9} {need}")
        return 0
    if plot is not None and not plot_available():
        return _error("--plot needs matplotlib: pip install 'pyvmm[plot]'")
    p = Params.quick() if quick else Params()
    p = Params(
        iters if iters is not None else p.iters,
        warmup if warmup is not None else p.warmup,
        reps if reps is not None else p.reps,
    )
    if p.iters < 1 or p.reps < 1 or p.warmup < 0:
        return _error("--iters and --reps must be at least 1, --warmup at least 0")
    if p.iters * p.reps > 4_000_000:
        return _error("--iters x --reps must be at most 4000000 samples")
    from pyvmm.reportfile import ReportFileError, check_report_path, open_report_file

    json_out = None
    # Before the runs: a FIFO or a device named by mistake fails now, not after a minute.
    if plot is not None:
        try:
            check_report_path(str(plot))
        except ReportFileError as e:
            return _error(f"--plot: {e}")
    if json_file is not None:
        try:
            json_out = open_report_file(str(json_file))
        except ReportFileError as e:
            return _error(f"--json: {e}")
    try:
        classes = select(only, hw_api)
        host = host_info()
        results = run_all(classes, p)
    except BenchError as e:
        if json_out is not None:
            json_out.close()
        return _error(str(e))
    print(format_table(results, p, host))
    try:
        if json_out is not None:
            with json_out:
                write_json(json_out, to_json(results, p, host))
        if plot is not None:
            write_plot(plot, results)
    except OSError as e:
        return _error(f"cannot write {e.filename}: {e.strerror}")
    return 0
