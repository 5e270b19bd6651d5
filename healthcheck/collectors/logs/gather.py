"""What the logs collector reads: the configured log directories, the log files found under
them (newest first), and the end of each file, all through the run's shared facts (one walk
and one read per file, shared with the gpu collector's CUDA scan). I/O only.
"""

from __future__ import annotations

from healthcheck.collectors.logs.judge import LogReadings
from healthcheck.config import Config, LogsConfig
from healthcheck.facts import Facts
from healthcheck.logtail import tail_window


def gather(cfg: LogsConfig, config: Config, facts: Facts) -> LogReadings:
    """The log directories, the files found, and the tails of the newest `max_files`."""
    dirs, candidates = facts.log_discovery(cfg)
    chosen = candidates[: cfg.max_files]
    window = tail_window(config)
    tails = [
        facts.log_tail(cand.path, cfg.tail_lines, cfg.max_line_bytes, window) for cand in chosen
    ]
    return LogReadings(dirs, candidates, tails)
