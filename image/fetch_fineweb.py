#!/usr/bin/env python3
"""Fetch the GPT-2-tokenized FineWeb shards the speedrun trains on, checked, into a folder (or a data volume).

The shards are the speedrun's: `fineweb_val_000000.bin` (the fixed validation stream) and
`fineweb_train_000001.bin` ... (about 100M tokens each), from the Hugging Face dataset `kjj0/fineweb10B-gpt2`.
Each file is checked (header magic 20240520, version 1, token count matching its size) and moved into place
atomically, so an interrupted run leaves no half file behind and a second run fetches only what is missing.

    fetch_fineweb.py --out /workspace/data/fineweb10B --train-shards 9
    fetch_fineweb.py --out /workspace/data/fineweb10B --from /opt/nanogpt-bench/fineweb10B   # copy baked-in shards

Standard library only: it runs in the image's build stage and in a bare one-off container. Honours $HF_ENDPOINT
(a mirror) and $HF_TOKEN.
"""

from __future__ import annotations

import argparse
import os
import shutil
import struct
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

DATASET = "kjj0/fineweb10B-gpt2"
MAGIC, VERSION, HEADER_BYTES, TOKEN_BYTES = 20240520, 1, 256 * 4, 2
DEFAULT_TRAIN_SHARDS = 9
MAX_TRAIN_SHARDS = 103  # the full 10B-token set: fineweb_train_000001 ... 000103


def shard_names(train_shards: int) -> list[str]:
    return ["fineweb_val_000000.bin"] + [f"fineweb_train_{i:06d}.bin" for i in range(1, train_shards + 1)]


def check_shard(path: Path) -> str | None:
    """None if `path` is a whole shard, else what is wrong with it."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            header = f.read(HEADER_BYTES)
    except OSError as err:
        return err.strerror or str(err)
    if len(header) < HEADER_BYTES:
        return f"only {size} bytes, shorter than the header"
    magic, version, tokens = struct.unpack("<3i", header[:12])
    if magic != MAGIC:
        return f"magic number {magic}, expected {MAGIC} (not a shard, or an error page)"
    if version != VERSION:
        return f"version {version}, expected {VERSION}"
    if size != HEADER_BYTES + tokens * TOKEN_BYTES:
        return f"{size} bytes but the header promises {tokens} tokens ({HEADER_BYTES + tokens * TOKEN_BYTES} bytes)"
    return None


def base_url() -> str:
    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
    return f"{endpoint}/datasets/{DATASET}/resolve/main"


def download(url: str, dest: Path, attempts: int = 5) -> None:
    headers = {"User-Agent": "nanogpt-bench-fetch-fineweb/1"}
    if os.environ.get("HF_TOKEN"):
        headers["Authorization"] = f"Bearer {os.environ['HF_TOKEN']}"
    for attempt in range(1, attempts + 1):
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=60) as resp, \
                    open(dest, "wb") as out:
                shutil.copyfileobj(resp, out, length=1 << 22)
            return
        except (urllib.error.URLError, OSError) as err:
            if attempt == attempts:
                raise SystemExit(f"fetch_fineweb: could not download {url} after {attempts} attempts ({err}); "
                                 "check the network (or set HF_ENDPOINT to a mirror) and run again.") from None
            wait = 2 ** attempt
            print(f"fetch_fineweb: {url}: {err}; retrying in {wait} s", file=sys.stderr, flush=True)
            time.sleep(wait)


def fetch(out: Path, train_shards: int, source: Path | None) -> int:
    out.mkdir(parents=True, exist_ok=True)
    fetched = 0
    for name in shard_names(train_shards):
        final = out / name
        if final.exists() and check_shard(final) is None:
            continue
        fd, tmp_name = tempfile.mkstemp(prefix=f".{name}.", suffix=".part", dir=out)
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            if source is not None and (source / name).is_file():
                shutil.copyfile(source / name, tmp)
                origin = str(source / name)
            else:
                origin = f"{base_url()}/{name}"
                download(origin, tmp)
            problem = check_shard(tmp)
            if problem:
                raise SystemExit(f"fetch_fineweb: {origin} is not a valid shard ({problem}); nothing was written "
                                 "for it, run again.")
            tmp.chmod(0o644)
            os.replace(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)
        fetched += 1
        print(f"fetch_fineweb: {final} ({final.stat().st_size / 1e6:.0f} MB) from {origin}", flush=True)
    return fetched


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, type=Path, help="folder for the shards (e.g. .../fineweb10B)")
    parser.add_argument("--train-shards", type=int, default=int(os.environ.get("FINEWEB_TRAIN_SHARDS",
                                                                             DEFAULT_TRAIN_SHARDS)),
                        help=f"training shards besides the validation shard (default {DEFAULT_TRAIN_SHARDS}, "
                             f"at most {MAX_TRAIN_SHARDS})")
    parser.add_argument("--from", dest="source", type=Path,
                        help="copy shards from this folder when it has them (the image's baked-in copy)")
    parser.add_argument("--check", action="store_true", help="only check the shards in --out; exit 1 if any is bad")
    args = parser.parse_args(argv)
    if not 0 <= args.train_shards <= MAX_TRAIN_SHARDS:
        parser.error(f"--train-shards must be between 0 and {MAX_TRAIN_SHARDS}")
    if args.check:
        bad = [(n, check_shard(args.out / n)) for n in shard_names(args.train_shards)]
        bad = [(n, p) for n, p in bad if p]
        for name, problem in bad:
            print(f"fetch_fineweb: {args.out / name}: {problem}", file=sys.stderr)
        return 1 if bad else 0
    n = fetch(args.out, args.train_shards, args.source)
    print(f"fetch_fineweb: {args.out} holds the validation shard and {args.train_shards} training shards "
          f"({n} new)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
