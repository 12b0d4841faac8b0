"""``python -m ganreg_ext info``: print :func:`ganreg_ext.backend_info` for people."""

import json
import sys

from . import backend_info


def main(argv: list[str]) -> int:
    if argv[:1] != ["info"]:
        print("usage: python -m ganreg_ext info      (the demo is python -m ganreg_ext.demo)")
        return 2
    info = backend_info()
    backends = info.pop("backends")
    print(json.dumps(info, indent=2, default=str))
    print("\nbackend     available  reason / ops")
    for name, b in backends.items():
        detail = ", ".join(b["ops"]) if b["available"] else b["reason"]
        print(f"{name:<11} {'yes' if b['available'] else 'no':<10} {detail}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
