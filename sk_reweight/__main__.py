"""``python -m sk_reweight``: the command line of :mod:`sk_reweight.harness`."""

from sk_reweight.harness import main

if __name__ == "__main__":
    raise SystemExit(main())
