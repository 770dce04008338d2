"""`nanogpt-tui data`: write synthetic token shards and check shard files."""

from __future__ import annotations

import argparse
from pathlib import Path

# Defaults sized for the smoke record (human_baselines/smoke): it reads about 0.5M train
# tokens and scores 65,536 val tokens, so 4 x 1M train tokens and 256K val tokens leave
# room for variants that train longer, and take well under a second to write.
DEFAULT_TRAIN_SHARDS = 4
DEFAULT_TOKENS_PER_SHARD = 1_000_000
DEFAULT_VAL_TOKENS = 262_144
DEFAULT_SEED = 0


def register(subparsers: argparse._SubParsersAction) -> None:
    data = subparsers.add_parser(
        "data",
        help="write synthetic token shards or inspect shard files",
        description="Token shards in the speedrun's .bin format: write learnable synthetic ones "
        "(for the smoke record and tests) or check the headers of existing ones.",
    )
    data.set_defaults(func=lambda args: _print_help(data))
    commands = data.add_subparsers(dest="data_command", metavar="SUBCOMMAND")

    synth = commands.add_parser(
        "synth",
        help="write synthetic train/val shards with a known entropy floor",
        description="Write fineweb_train_000001.bin... and fineweb_val_000000.bin drawn from a "
        "seeded Markov chain over a small vocabulary, plus synth.json with its exact entropy "
        "floor (the lowest val_loss any model can reach). The same seed gives the same bytes. "
        "For the smoke record: --out human_baselines/smoke/data/fineweb10B.",
    )
    synth.add_argument("--out", required=True, type=Path, metavar="DIR", help="directory to write the shards into (created if missing)")
    synth.add_argument(
        "--train-shards", type=_positive_int, default=DEFAULT_TRAIN_SHARDS, metavar="N", help=f"number of train shards (default {DEFAULT_TRAIN_SHARDS})"
    )
    synth.add_argument(
        "--tokens-per-shard",
        type=_positive_int,
        default=DEFAULT_TOKENS_PER_SHARD,
        metavar="M",
        help=f"tokens in each train shard (default {DEFAULT_TOKENS_PER_SHARD:,})",
    )
    synth.add_argument(
        "--val-tokens", type=_positive_int, default=DEFAULT_VAL_TOKENS, metavar="V", help=f"tokens in the val shard (default {DEFAULT_VAL_TOKENS:,})"
    )
    synth.add_argument(
        "--seed", type=_non_negative_int, default=DEFAULT_SEED, metavar="S", help=f"seed of the chain and the samples (default {DEFAULT_SEED})"
    )
    synth.set_defaults(func=run_synth)

    inspect = commands.add_parser(
        "inspect",
        help="print the header facts of shard files",
        description="Check each .bin shard's header (magic 20240520, version 1, token count "
        "matching the file size) and print what it holds. Exits 2 at the first bad file.",
    )
    inspect.add_argument("files", nargs="+", type=Path, metavar="FILE", help="a .bin shard")
    inspect.set_defaults(func=run_inspect)


def run_synth(args: argparse.Namespace) -> int:
    from nanogpt_tui.shards import synthesize

    info = synthesize(
        args.out,
        train_shards=args.train_shards,
        tokens_per_shard=args.tokens_per_shard,
        val_tokens=args.val_tokens,
        seed=args.seed,
    )
    print(f"wrote {len(info.train_files)} train shards of {args.tokens_per_shard:,} tokens and 1 val shard of {info.val_tokens:,} tokens to {info.out_dir}")
    for path in (info.val_file, *info.train_files):
        print(f"  {path.name}")
    print(f"  {info.manifest.name}")
    print(f"vocabulary {info.vocab_size} tokens, seed {info.seed}")
    print(f"entropy floor {info.entropy_floor_nats:.4f} nats/token (the best reachable val_loss)")
    print(f"unigram entropy {info.unigram_entropy_nats:.4f} nats, uniform guessing {info.uniform_entropy_nats:.4f} nats")
    return 0


def run_inspect(args: argparse.Namespace) -> int:
    import numpy as np

    from nanogpt_tui.shards import HEADER_BYTES, TOKEN_DTYPE, read_shard_header

    for path in args.files:
        header = read_shard_header(path)
        tokens = np.memmap(path, dtype=TOKEN_DTYPE, mode="r", offset=HEADER_BYTES, shape=(header.num_tokens,)) if header.num_tokens else None
        print(f"{path}:")
        print(f"  magic {header.magic}, version {header.version}, {header.num_tokens:,} tokens, {header.file_bytes:,} bytes")
        if tokens is not None:
            # The largest id tells whether the shard fits a model's vocabulary (50257 for GPT-2).
            print(f"  token ids {int(tokens.min())}..{int(tokens.max())}")
    return 0


def _print_help(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 0


def _positive_int(text: str) -> int:
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive integer")
    return value


def _non_negative_int(text: str) -> int:
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is negative")
    return value


def _int(text: str) -> int:
    try:
        return int(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
