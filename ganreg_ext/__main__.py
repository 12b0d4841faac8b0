"""``python -m ganreg_ext info``: print :func:`ganreg_ext.backend_info` for people."""

import json
import sys

from . import backend_info
from .memory import DEFAULT_CPU_CACHE_MB, ENV_VAR


def main(argv: list[str]) -> int:
    if argv[:1] != ["info"]:
        print("usage: python -m ganreg_ext info      (the demo is python -m ganreg_ext.demo)")
        return 2
    info = backend_info()
    backends = info.pop("backends")
    cache = info.pop("cpu_cache", None)
    print(json.dumps(info, indent=2, default=str))
    print("\n" + cpu_cache_line(cache))
    print("\nbackend     available  reason / ops")
    for name, b in backends.items():
        detail = ", ".join(b["ops"]) if b["available"] else b["reason"]
        print(f"{name:<11} {'yes' if b['available'] else 'no':<10} {detail}")
    return 0


def cpu_cache_line(stats: dict | None) -> str:
    """One line on the CPU reuse cache (docs/memory.md): limit, held now, peak, hits/misses."""
    if not stats or "unavailable" in stats:
        return f"CPU reuse cache: unavailable ({(stats or {}).get('unavailable', 'no ganreg_ext._C')})"
    mib = lambda n: f"{n / 2**20:.1f} MiB"  # noqa: E731
    limit = mib(stats["limit_bytes"]) if stats["limit_bytes"] else "0 (off)"
    return (
        f"CPU reuse cache: limit {limit} ({ENV_VAR}, default {DEFAULT_CPU_CACHE_MB} MiB); "
        f"current {mib(stats['allocated_bytes'] + stats['cached_bytes'])} "
        f"({mib(stats['allocated_bytes'])} allocated, {mib(stats['cached_bytes'])} cached in {stats['cached_blocks']} blocks); "
        f"peak {mib(stats['peak_bytes'])}; hits {stats['hits']}, misses {stats['misses']}"
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
