#!/usr/bin/env python3
"""Verify a Tessera access token with pyseto, an implementation independent of Tessera's.

Usage:
    verify_with_pyseto.py [--leeway SECONDS] [--kid KID] PASERK TOKEN
    echo '{"paserk": "k4.public...", "token": "v4.public...", "kid": "k4.pid..."}' \
        | verify_with_pyseto.py [--leeway SECONDS]

PASERK is the `k4.public.…` key (GetKeySet `paserk`), TOKEN the `v4.public.…` access token.
With no positional arguments, a JSON object is read from stdin instead ("kid" optional).

Checks, all with pyseto (`pip install pyseto`) and the standard library only:
  * the signature verifies with the key (pyseto.Paseto.decode, JSON deserializer), and pyseto's
    registered-claim checks pass (`exp`, `nbf`) with --leeway seconds of leeway (default 5,
    Tessera's default TESSERA_CLOCK_LEEWAY);
  * the footer is exactly {"kid": <k4.pid of the key as pyseto computes it>} (and equals --kid
    when given);
  * the SPEC §3 claims are present as strings, and iat/nbf/exp are RFC 3339 date-times.

Prints one JSON object on stdout (decoded claims, footer, pyseto version, and how pyseto's
default settings -- leeway 0 -- judge the token, for information only). Exit code 0 when every
check passes, 1 when one fails (reason on stderr), 2 on bad usage.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import sys
from datetime import datetime
from typing import Any

try:
    import pyseto
    from pyseto import Paseto
except ImportError:  # pragma: no cover - depends on the machine
    print("pyseto is not installed: python3 -m pip install pyseto", file=sys.stderr)
    sys.exit(2)

REQUIRED_STRING_CLAIMS = ("iss", "sub", "client_id", "scope", "jti", "iat", "nbf", "exp")
TIME_CLAIMS = ("iat", "nbf", "exp")


class CheckFailed(Exception):
    pass


def read_inputs(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Verify a Tessera v4.public token with pyseto.",
        epilog="Without PASERK and TOKEN, reads {\"paserk\", \"token\", \"kid\"?} as JSON from stdin.",
    )
    parser.add_argument("--leeway", type=int, default=5, help="seconds of leeway on exp/nbf (default 5)")
    parser.add_argument("--kid", help="the kid the footer must name (e.g. GetKeySet `kid`)")
    parser.add_argument("paserk", nargs="?", help="k4.public.… key")
    parser.add_argument("token", nargs="?", help="v4.public.… token")
    args = parser.parse_args(argv)
    if (args.paserk is None) != (args.token is None):
        parser.error("give both PASERK and TOKEN, or neither (then JSON on stdin)")
    if args.paserk is None:
        try:
            doc = json.load(sys.stdin)
            args.paserk, args.token = doc["paserk"], doc["token"]
            args.kid = args.kid or doc.get("kid")
        except (ValueError, KeyError, TypeError) as err:
            parser.error(f'stdin must be a JSON object with "paserk" and "token": {err!r}')
    return args


def parse_time(name: str, value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as err:
        raise CheckFailed(f"claim {name}={value!r} is not an RFC 3339 date-time") from err
    if parsed.tzinfo is None:
        raise CheckFailed(f"claim {name}={value!r} has no UTC offset")
    return parsed


def verify(paserk: str, token: str, leeway: int, kid: str | None) -> dict[str, Any]:
    try:
        key = pyseto.Key.from_paserk(paserk)
    except Exception as err:
        raise CheckFailed(f"pyseto rejects the PASERK: {err!r}") from err
    if (key.version, key.purpose) != (4, "public"):
        raise CheckFailed(f"expected a v4 public key, got v{key.version}.{key.purpose}")
    if not token.startswith("v4.public."):
        raise CheckFailed("the token is not v4.public")

    try:
        decoded = Paseto.new(leeway=leeway).decode(key, token, deserializer=json)
    except Exception as err:
        raise CheckFailed(f"pyseto rejects the token: {type(err).__name__}: {err}") from err

    claims, footer = decoded.payload, decoded.footer
    if not isinstance(claims, dict):
        raise CheckFailed(f"the payload is not a JSON object: {claims!r}")

    pid = key.to_paserk_id()
    if footer != {"kid": pid}:
        raise CheckFailed(f"footer {footer!r} is not exactly {{'kid': {pid!r}}}")
    if kid is not None and kid != pid:
        raise CheckFailed(f"footer kid {pid!r} differs from the expected kid {kid!r}")

    missing = [c for c in REQUIRED_STRING_CLAIMS if not isinstance(claims.get(c), str)]
    if missing:
        raise CheckFailed(f"claims missing or not strings: {missing}")
    times = {c: parse_time(c, claims[c]) for c in TIME_CLAIMS}
    if not times["nbf"] <= times["iat"] < times["exp"]:
        raise CheckFailed(f"expected nbf <= iat < exp: {claims}")

    # pyseto's module-level decode has no leeway and compares against the current time
    # truncated to whole seconds; Tessera writes `nbf` in whole seconds so that a fresh token
    # passes even this strictest reading.
    try:
        pyseto.decode(key, token, deserializer=json)
        strict = "accepted"
    except Exception as err:
        raise CheckFailed(f"pyseto.decode with leeway 0 rejected a fresh token: {err}") from err

    return {
        "pyseto": importlib.metadata.version("pyseto"),
        "verified": True,
        "kid_is_pid_of_key": True,
        "leeway_seconds": leeway,
        "claims": claims,
        "footer": footer,
        "pyseto_decode_with_default_leeway_0": strict,
    }


def main(argv: list[str]) -> int:
    args = read_inputs(argv)
    try:
        result = verify(args.paserk, args.token, args.leeway, args.kid)
    except CheckFailed as err:
        print(f"FAIL: {err}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2, sort_keys=False))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
