"""A Stats summary -> a file: CSV, JSON, Markdown, or Prometheus text exposition format.

Every format is written to a temporary file beside the target and renamed over it, so a
reader (node_exporter's textfile collector, a dashboard) never sees half a file.
Schemas (stable; `schema` / the CSV header say which):
  json  {"schema": "bptrace-exec-stats/1", "generated", "title", "host" and "profile"
         (of a live run or a replay), "duration_s", "execs"
        (or "calls" for syscall profiles, here and below),
         "failed" (null where not counted: a profile of successful calls only),
         "rate_per_s", "breakdowns": {NAME: {"distinct", "other",
         "top": [{"key", "count", "share"}]}}, "latency": {"count", "min_ns", "max_ns",
         "sum_ns", "p50_us"/"p90_us"/"p99_us": [low, high], "buckets": [{"low_us",
         "high_us", "count"}]}}
  csv   section,key,count,share; sections: total (execs, failed if counted, distinct_<name>,
         duration_ms), <breakdown name> (a row per top key, then "(other)": the
         rest), latency_bucket_us
         ("low-high"), latency_ns (min, max, sum)
  md    the report's tables as GitHub Markdown
  prom  the metrics --serve serves (bptrace_exec.output.metrics), written by
        prometheus_client's write_to_textfile for node_exporter's textfile collector
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING

# csv, datetime and tempfile are imported where they are used: the command line's parser
# imports this module for FORMATS, and --help and --emit need none of them
from bptrace_exec.errors import ExportError, UsageError
from bptrace_exec.output.report import bucket_text, share, title_of
from bptrace_exec.output.text import json_line

if TYPE_CHECKING:  # prometheus_client takes 80 ms to import: only metrics need it
    from prometheus_client import CollectorRegistry

    from bptrace_exec.output.metrics import Keys, RunState
    from bptrace_exec.output.tally import Stats

Labels = Mapping[str, str]  # host and profile: JSON fields, and labels of every series
NO_LABELS: Labels = MappingProxyType({})
FORMATS = {".csv": "csv", ".json": "json", ".md": "md", ".prom": "prom"}
SCHEMA = "bptrace-exec-stats/1"


def format_for(path: str, explicit: str | None) -> str:
    if explicit:
        return explicit
    fmt = FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise UsageError(f"cannot tell the export format of {path!r} from its extension",
                          hint="name it .csv, .json, .md or .prom, or give --export-format")
    return fmt


def check_writable(path: str) -> None:
    """Before tracing starts: a run must not end in an export that cannot be written."""
    target = Path(path)
    try:
        exists, folder = target.exists(), target.resolve().parent
    except (OSError, RuntimeError) as exc:  # a name too long; a loop of links
        raise ExportError(f"cannot write {path}: {getattr(exc, 'strerror', None) or exc}",
                          hint="give the path of a file to create or replace") from None
    if exists and not target.is_file():
        raise ExportError(f"cannot export to {path}: it exists and is not a regular file",
                          hint="give the path of a file to create or replace")
    if not folder.is_dir():
        raise ExportError(f"cannot write {path}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ExportError(f"cannot write {path}: folder {folder} is not writable")


def to_dict(stats: Stats, *, top: int, title: str,
            labels: Labels = NO_LABELS) -> dict[str, object]:
    from datetime import datetime, timezone

    out: dict[str, object] = {
        "schema": SCHEMA,
        "generated": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "title": title, **labels, "duration_s": round(stats.duration_s, 3),
        stats.unit: stats.count, "failed": stats.failed, "rate_per_s": round(stats.rate, 3),
    }
    breakdowns = {}
    for name, rows in stats.breakdowns.items():
        total = stats.total_of(name)
        shown = rows[:top]
        breakdowns[name] = {
            "distinct": len(rows),
            "other": stats.rest(name, top),
            "top": [{"key": k, "count": c, "share": round(c / total, 6) if total else 0.0}
                    for k, c in shown],
        }
    out["breakdowns"] = breakdowns
    lat = stats.latency
    if lat and lat.count:
        pct = {f"p{int(q * 100)}_us": [lat.percentile(q).low_us, lat.percentile(q).high_us + 1]
               for q in (0.5, 0.9, 0.99)}
        out["latency"] = {"count": lat.count, "min_ns": lat.min_ns, "max_ns": lat.max_ns,
                          "sum_ns": lat.sum_ns, **pct,
                          "buckets": [{"low_us": b.low_us, "high_us": b.high_us,
                                       "count": b.count} for b in lat.buckets]}
    return out


def to_json(stats: Stats, *, top: int, title: str, labels: Labels = NO_LABELS) -> str:
    return json_line(to_dict(stats, top=top, title=title, labels=labels), _INDENTED) + "\n"


_INDENTED = json.JSONEncoder(indent=2, ensure_ascii=False)


def to_csv(stats: Stats, *, top: int, title: str, labels: Labels = NO_LABELS) -> str:
    import csv

    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["section", "key", "count", "share"])
    w.writerow(["total", stats.unit, stats.count, ""])
    if stats.failed is not None:
        w.writerow(["total", "failed", stats.failed, share(stats.failed, stats.count)])
    w.writerow(["total", "duration_ms", round(stats.duration_s * 1000), ""])
    for name, rows in stats.breakdowns.items():
        w.writerow(["total", f"distinct_{name}", len(rows), ""])
    for name in stats.breakdowns:
        total = stats.total_of(name)
        for key, count in stats.top(name, top):
            w.writerow([name, key, count, share(count, total)])
    if stats.latency:
        for b in stats.latency.buckets:
            w.writerow(["latency_bucket_us", f"{b.low_us}-{b.high_us}", b.count, ""])
        for key in ("min_ns", "max_ns", "sum_ns"):
            w.writerow(["latency_ns", key.removesuffix("_ns"), getattr(stats.latency, key), ""])
    return buf.getvalue()


def to_markdown(stats: Stats, *, top: int, title: str, labels: Labels = NO_LABELS) -> str:
    from tabulate import tabulate  # only reports need it; it costs 15 ms to import

    out = [f"# {_md_escape(title)}", "",
           tabulate([[stats.unit, f"{stats.count:,}"],
                     *([["failed", f"{stats.failed:,}"]] if stats.failed is not None else []),
                     ["duration", f"{stats.duration_s:.1f} s"],
                     ["rate", f"{stats.rate:.1f}/s"]], headers=["total", "value"],
                    tablefmt="github")]
    for name in stats.breakdowns:
        total = stats.total_of(name)
        out += ["", f"## {title_of(name, stats.unit)}", "",
                tabulate([[_md_escape(k), c, share(c, total)] for k, c in stats.top(name, top)],
                         headers=[name, "count", "share"], tablefmt="github")]
    if stats.latency and stats.latency.count:
        out += ["", "## Latency", "",
                tabulate([[bucket_text(b), b.count] for b in stats.latency.buckets],
                         headers=["bucket", "count"], tablefmt="github")]
    return "\n".join(out) + "\n"


def _md_escape(text: str) -> str:
    cleaned = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)
    return cleaned.replace("\\", "\\\\").replace("|", "\\|").replace("`", "\\`")


def to_prometheus(stats: Stats, *, top: int, title: str, labels: Labels = NO_LABELS,
                  run: RunState | None = None, keys: Keys | None = None) -> str:
    from prometheus_client import generate_latest

    return generate_latest(_registry(stats, top, labels, run, keys)).decode()


def _registry(stats: Stats, top: int, labels: Labels, run: RunState | None,
              keys: Keys | None) -> CollectorRegistry:
    """`keys`: the series a scrape of the same run has (--serve), else the top ones."""
    from prometheus_client import CollectorRegistry

    from bptrace_exec.output.metrics import Exporter, Keys, families

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Exporter(families(stats, keys or Keys(top), labels, run)))
    return registry


WRITERS = {"csv": to_csv, "json": to_json, "md": to_markdown}


def write_export(stats: Stats, path: str, fmt: str, *, top: int, title: str,
                 labels: Labels = NO_LABELS, run: RunState | None = None,
                 keys: Keys | None = None) -> None:
    check_writable(path)  # again: the run may have lasted long enough for things to change
    if fmt == "prom":  # for node_exporter's textfile collector, as prometheus_client writes
        from prometheus_client import write_to_textfile

        try:  # it too writes beside the target and renames over it
            write_to_textfile(path, _registry(stats, top, labels, run, keys))
        except OSError as exc:
            raise _unwritten(path, exc) from None
        return
    # names not UTF-8: their bytes as \xNN (the JSON export has them exact, in "b64")
    text = WRITERS[fmt](stats, top=top, title=title, labels=labels).encode(
        "utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    write_text(path, text)


def write_text(path: str, text: str, what: str = "the export",
               hint: str = "the report above is complete; free space or choose another "
                           "--export path") -> None:
    """Written beside the target and renamed over it: a reader never sees half of it."""
    import tempfile

    check_writable(path)
    target = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(dir=target.resolve().parent, prefix=f".{target.name}.")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise ExportError(f"cannot write {what} {path}: {exc.strerror or exc}",
                          hint=hint) from None


def _unwritten(path: str, exc: OSError) -> ExportError:
    return ExportError(f"cannot write the export {path}: {exc.strerror or exc}",
                       hint="the report above is complete; free space or choose another "
                            "--export path")
