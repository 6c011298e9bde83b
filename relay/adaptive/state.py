"""Adaptive state across restarts: live values, overrides, holds with their end times, window
counts, reply-rule match times, and the last adjustment and alert times, as JSON.

`to_json(engine)` / `from_json(text)` are pure; `save(engine, path)` writes atomically (temp
file in the same directory, fsync, rename, fsync of the directory) and `load(path)` never
raises on a bad file: it returns an empty engine and a warning saying why.
"""

from __future__ import annotations

import json
from collections import deque
from pathlib import Path
from typing import Any

from relay.adaptive.engine import AdaptiveEngine, EngineConfig, PairState
from relay.adaptive.events import Hold
from relay.bind.suspensions import SuspensionTable
from relay.config import values as v
from relay.durable import write_atomically

__all__ = ["FORMAT", "decode_value", "encode_value", "from_json", "load", "save", "to_json"]

FORMAT = "relay-adaptive-state/1"


def encode_value(value: Any) -> Any:
    """An option value as JSON data (a Throttle as {"throttle": [count, period]})."""
    if isinstance(value, v.Throttle):
        return {"throttle": [value.count, value.period]}
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise TypeError(f"cannot save a {type(value).__name__} option value")


def decode_value(data: Any) -> Any:
    if isinstance(data, dict):
        count, period = data["throttle"]
        return v.Throttle(int(count), float(period))
    if data is None or isinstance(data, (bool, int, float, str)):
        return data
    raise ValueError(f"bad option value {data!r}")


def _encode_hold(hold: Hold | None) -> Any:
    if hold is None:
        return None
    return {"since": hold.since, "until": hold.until, "reason": hold.reason}


def _decode_hold(data: Any, binding: str, domain: str, kind: str) -> Hold | None:
    if data is None:
        return None
    assert kind in ("suspension", "blackhole")
    return Hold(
        binding,
        domain,
        "suspension" if kind == "suspension" else "blackhole",
        float(data["since"]),
        float(data["until"]),
        str(data["reason"]),
    )


def _encode_pair(binding: str, domain: str, pair: PairState) -> dict[str, Any]:
    return {
        "binding": binding,
        "domain": domain,
        "created": pair.created,
        "live": {k: encode_value(x) for k, x in pair.live.items()},
        "overrides": {k: encode_value(x) for k, x in pair.overrides.items()},
        "matches": {k: list(times) for k, times in pair.matches.items()},
        # when this node last fired each reply rule, and when a hold's end emptied the
        # windows: the other nodes' matches before them stay spent after a restart
        "fired": dict(pair.fired),
        "cleared": pair.cleared,
        "last_adjust": pair.last_adjust,
        "last_negative": pair.last_negative,
        "last_positive": pair.last_positive,
        "suspension": _encode_hold(pair.suspension),
        "blackhole": _encode_hold(pair.blackhole),
        "stats": pair.stats.to_data(),
        "fingerprints": pair.fingerprints.to_data(),
        "fbl": pair.fbl.to_data(),
    }


def _optional_float(data: Any) -> float | None:
    return None if data is None else float(data)


def to_json(engine: AdaptiveEngine) -> str:
    data = {
        "format": FORMAT,
        "pairs": [_encode_pair(b, d, pair) for (b, d), pair in sorted(engine.pairs.items())],
        "alerts": [[b, d, kind, at] for (b, d, kind), at in sorted(engine.alert_times.items())],
    }
    return json.dumps(data, indent=1, sort_keys=True) + "\n"


def from_json(
    text: str, config: EngineConfig | None = None, suspensions: SuspensionTable | None = None
) -> tuple[AdaptiveEngine, str | None]:
    """An engine restored from `text`, and a warning (None when all went well). A file that
    cannot be read at all gives an empty engine; window counts saved with another window
    shape are dropped (live values and holds are kept)."""
    engine = AdaptiveEngine(config, suspensions)
    try:
        data = json.loads(text)
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            return engine, f"not a {FORMAT} file; starting with empty adaptive state"
        dropped = 0
        for item in data["pairs"]:
            binding, domain = str(item["binding"]), str(item["domain"])
            pair = engine.new_pair(float(item["created"]))
            pair.live = {str(k): decode_value(x) for k, x in item["live"].items()}
            pair.overrides = {str(k): decode_value(x) for k, x in item["overrides"].items()}
            pair.matches = {
                str(k): deque(float(t) for t in ts) for k, ts in item["matches"].items()
            }
            pair.fired = {str(k): float(t) for k, t in item.get("fired", {}).items()}
            pair.cleared = float(item.get("cleared", 0.0))
            pair.last_adjust = _optional_float(item["last_adjust"])
            pair.last_negative = _optional_float(item["last_negative"])
            pair.last_positive = _optional_float(item["last_positive"])
            pair.suspension = _decode_hold(item["suspension"], binding, domain, "suspension")
            pair.blackhole = _decode_hold(item["blackhole"], binding, domain, "blackhole")
            try:
                pair.stats.load_data(item["stats"])
                pair.fingerprints.load_data(item["fingerprints"])
                pair.fbl.load_data(item["fbl"])
            except ValueError:
                pair.stats.clear()
                pair.fingerprints.clear()
                pair.fbl.clear()
                dropped += 1
            engine.restore_pair(binding, domain, pair)
        for binding, domain, kind, at in data.get("alerts", []):
            engine.alert_times[(str(binding), str(domain), str(kind))] = float(at)
    except (ValueError, KeyError, TypeError, AttributeError, AssertionError) as err:
        if suspensions is not None:
            suspensions.clear()  # what the partial read put there
        return AdaptiveEngine(config, suspensions), (
            f"adaptive state is corrupt ({err!r}); starting empty"
        )
    if dropped:
        return engine, f"window counts of {dropped} binding x domain pair(s) dropped: shape changed"
    return engine, None


def save(engine: AdaptiveEngine, path: str | Path) -> None:
    """Write the state atomically: a reader sees the old file or the new one, never half."""
    write_atomically(to_json(engine), path)


def load(
    path: str | Path, config: EngineConfig | None = None, suspensions: SuspensionTable | None = None
) -> tuple[AdaptiveEngine, str | None]:
    """The engine saved at `path`; a missing file is a fresh start (no warning), an unreadable
    or corrupt one an empty engine and a warning naming the file."""
    target = Path(path)
    try:
        text = target.read_text(encoding="utf-8")
    except FileNotFoundError:
        return AdaptiveEngine(config, suspensions), None
    except (OSError, UnicodeDecodeError) as err:
        return AdaptiveEngine(
            config, suspensions
        ), f"{target}: cannot read adaptive state ({err}); starting empty"
    engine, warning = from_json(text, config, suspensions)
    if warning is not None:
        warning = f"{target}: {warning}"
    return engine, warning
