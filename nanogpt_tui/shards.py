"""FineWeb `.bin` token shards (the speedrun's format) and a synthetic, learnable source of them."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nanogpt_tui.errors import UserError
from nanogpt_tui.fsutil import atomic_write_bytes, atomic_write_text

SHARD_MAGIC = 20240520
SHARD_VERSION = 1
HEADER_INTS = 256
HEADER_BYTES = HEADER_INTS * 4
TOKEN_DTYPE = np.dtype("<u2")
MAX_TOKEN_ID = int(np.iinfo(TOKEN_DTYPE).max)

SYNTH_SCHEMA_VERSION = 1
SYNTH_MANIFEST = "synth.json"
TRAIN_NAME = "fineweb_train_{index:06d}.bin"
VAL_NAME = "fineweb_val_{index:06d}.bin"

# The chain behind the smoke record. Its numbers are what `human_baselines/smoke/record.toml`
# was tuned against: change them and that target has to be checked again.
DEFAULT_VOCAB_SIZE = 256
DEFAULT_SUCCESSORS = 8
DEFAULT_DIRICHLET_ALPHA = 1.0
DEFAULT_LEAK = 0.02

# Tokens are drawn as many chains in parallel (vectorised), each this long, laid end to end.
# A chain boundary costs one token the unigram entropy instead of the entropy rate: at this
# length that moves the stream's average by well under a thousandth of a nat.
CHAIN_SEGMENT_TOKENS = 8192
_SAMPLE_BLOCK_STEPS = 512
MAX_SYNTH_VOCAB = 4096


@dataclass(frozen=True)
class ShardHeader:
    """The facts a shard's header states, checked against the file's size."""

    path: Path
    magic: int
    version: int
    num_tokens: int
    file_bytes: int


def atomic_write_json_readable(path: Path, obj) -> None:
    atomic_write_text(Path(path), json.dumps(obj, indent=2) + "\n", mode=0o644)


def write_shard(path: Path, tokens: np.ndarray) -> None:
    """Write `tokens` (ids below 65536) as a speedrun `.bin` shard, atomically."""
    tokens = np.asarray(tokens)
    if tokens.ndim != 1:
        raise ValueError(f"tokens must be one-dimensional, got shape {tokens.shape}")
    if tokens.size and (int(tokens.min()) < 0 or int(tokens.max()) > MAX_TOKEN_ID):
        raise ValueError("token ids must lie in 0..65535 to fit the shard's uint16 format")
    header = np.zeros(HEADER_INTS, dtype="<i4")
    header[0] = SHARD_MAGIC
    header[1] = SHARD_VERSION
    header[2] = tokens.size
    # Readable by everyone: a data volume filled as root is read by the agent's non-root user.
    atomic_write_bytes(Path(path), header.tobytes() + tokens.astype(TOKEN_DTYPE).tobytes(), mode=0o644)


def read_shard_header(path: Path) -> ShardHeader:
    """Read and check a shard's header without loading its tokens; bad files raise UserError."""
    path = Path(path)
    try:
        file_bytes = path.stat().st_size
        with path.open("rb") as handle:
            raw = handle.read(HEADER_BYTES)
    except FileNotFoundError:
        raise UserError(f"{path} does not exist: check the path, or create shards with `nanogpt-tui data synth`.") from None
    except IsADirectoryError:
        raise UserError(f"{path} is a directory, not a shard: pass the `.bin` files inside it.") from None
    except OSError as err:
        raise UserError(f"{path} could not be read ({err.strerror}): check its permissions.") from None
    if len(raw) < HEADER_BYTES:
        raise UserError(
            f"{path} is too short to be a token shard ({file_bytes} bytes, but a shard header alone is "
            f"{HEADER_BYTES} bytes): it is truncated or not a shard, so regenerate or re-download it."
        )
    header = np.frombuffer(raw, dtype="<i4")
    magic, version, num_tokens = (int(v) for v in header[:3])
    if magic != SHARD_MAGIC:
        raise UserError(
            f"{path} is not a token shard (header magic {magic}, expected {SHARD_MAGIC}): "
            "pass a FineWeb `.bin` shard or one written by `nanogpt-tui data synth`."
        )
    if version != SHARD_VERSION:
        raise UserError(
            f"{path} has shard format version {version}, but only version {SHARD_VERSION} is "
            "supported: regenerate it with `nanogpt-tui data synth` or the speedrun's data script."
        )
    expected = HEADER_BYTES + 2 * num_tokens
    if num_tokens < 0 or file_bytes != expected:
        raise UserError(
            f"{path} states {num_tokens} tokens ({expected} bytes) but is {file_bytes} bytes long: "
            "it is truncated or corrupt, so regenerate or re-download it."
        )
    return ShardHeader(path=path, magic=magic, version=version, num_tokens=num_tokens, file_bytes=file_bytes)


def read_shard(path: Path) -> np.ndarray:
    """Return a shard's tokens as uint16 after checking its header; bad files raise UserError."""
    header = read_shard_header(path)
    with Path(path).open("rb") as handle:
        handle.seek(HEADER_BYTES)
        return np.fromfile(handle, dtype=TOKEN_DTYPE, count=header.num_tokens)


# ---------------------------------------------------------------------------------------------
# The synthetic source


@dataclass(frozen=True)
class MarkovChain:
    """An order-1 Markov chain over a small vocabulary whose best possible loss is known exactly.

    Each token has `successors` likely next tokens with Dirichlet-drawn weights; a `leak`
    fraction of the probability goes uniformly to the whole vocabulary so that every
    transition is possible (the chain is irreducible and no loss is infinite).
    """

    vocab_size: int
    successors: np.ndarray  # (vocab, k) int: the likely next tokens of each token
    weights: np.ndarray  # (vocab, k) float: their probabilities before the leak, rows sum to 1
    leak: float

    def transition_matrix(self) -> np.ndarray:
        """The dense (vocab, vocab) matrix P[current, next]."""
        v = self.vocab_size
        matrix = np.full((v, v), self.leak / v)
        rows = np.arange(v)[:, None]
        np.add.at(matrix, (np.broadcast_to(rows, self.successors.shape), self.successors), (1.0 - self.leak) * self.weights)
        return matrix

    def stationary_distribution(self) -> np.ndarray:
        """The unigram distribution of a long sample (the left eigenvector of P for eigenvalue 1)."""
        matrix = self.transition_matrix()
        # Solve pi (P - I) = 0 with sum(pi) = 1 as one least-squares system: exact for an
        # irreducible chain, which the leak guarantees.
        v = self.vocab_size
        system = np.vstack([matrix.T - np.eye(v), np.ones((1, v))])
        rhs = np.zeros(v + 1)
        rhs[-1] = 1.0
        pi, *_ = np.linalg.lstsq(system, rhs, rcond=None)
        pi = np.clip(pi, 0.0, None)
        return pi / pi.sum()

    def entropy_rate_nats(self) -> float:
        """The lowest expected loss any model can reach: sum over contexts of pi(c) * H(P[c])."""
        matrix = self.transition_matrix()
        row_entropy = -(matrix * np.log(matrix)).sum(axis=1)
        return float(self.stationary_distribution() @ row_entropy)

    def unigram_entropy_nats(self) -> float:
        """The loss of the best model that ignores context (knows only token frequencies)."""
        pi = self.stationary_distribution()
        pi = pi[pi > 0]
        return float(-(pi * np.log(pi)).sum())

    def sample(self, num_tokens: int, rng: np.random.Generator) -> np.ndarray:
        """Draw `num_tokens` tokens as parallel chains of about CHAIN_SEGMENT_TOKENS each, laid end to end.

        Every segment starts from the stationary distribution, so the stream is stationary.
        """
        return self.sample_streams([num_tokens], [rng])[0]

    def sample_streams(self, counts: list[int], rngs: list[np.random.Generator]) -> list[np.ndarray]:
        """Draw several independent streams at once; each equals `sample(count, rng)` drawn alone.

        Sampling a chain is sequential in time, so the work is vectorised across every
        segment of every stream: the Python loop runs about CHAIN_SEGMENT_TOKENS steps
        however much data is asked for.
        """
        if len(counts) != len(rngs):
            raise ValueError("one generator per stream is needed")
        cdf = np.cumsum(self.weights, axis=1)
        cdf[:, -1] = 1.0  # guard the last bucket against rounding
        k = cdf.shape[1]
        pi = self.stationary_distribution()
        chains = [max(1, math.ceil(n / CHAIN_SEGMENT_TOKENS)) for n in counts]
        lengths = [math.ceil(n / c) if n > 0 else 0 for n, c in zip(counts, chains)]
        offsets = np.cumsum([0, *chains])
        total_chains = int(offsets[-1])
        longest = max(lengths, default=0)
        out = np.zeros((total_chains, max(longest, 1)), dtype=TOKEN_DTYPE)
        state = np.zeros(total_chains, dtype=np.int64)
        for s, rng in enumerate(rngs):
            if lengths[s]:
                state[offsets[s] : offsets[s + 1]] = rng.choice(self.vocab_size, size=chains[s], p=pi)
        out[:, 0] = state
        # Random numbers a block of steps at a time, each stream from its own generator in the
        # same order as when drawn alone: vectorised, yet bounded in memory.
        for start in range(1, longest, _SAMPLE_BLOCK_STEPS):
            steps = min(_SAMPLE_BLOCK_STEPS, longest - start)
            leak_draw = np.ones((steps, total_chains))
            pick_draw = np.zeros((steps, total_chains))
            uniform_tokens = np.zeros((steps, total_chains), dtype=np.int64)
            for s, rng in enumerate(rngs):
                own = min(steps, lengths[s] - start)
                if own <= 0:
                    continue
                cols = slice(offsets[s], offsets[s + 1])
                leak_draw[:own, cols] = rng.random((own, chains[s]))
                pick_draw[:own, cols] = rng.random((own, chains[s]))
                uniform_tokens[:own, cols] = rng.integers(0, self.vocab_size, size=(own, chains[s]))
            for i in range(steps):
                slot = (cdf[state] < pick_draw[i][:, None]).sum(axis=1)
                np.minimum(slot, k - 1, out=slot)
                state = np.where(leak_draw[i] < self.leak, uniform_tokens[i], self.successors[state, slot])
                out[:, start + i] = state
        return [
            out[offsets[s] : offsets[s + 1], : lengths[s]].reshape(-1)[: max(counts[s], 0)].copy()
            for s in range(len(counts))
        ]


def make_chain(
    seed: int,
    vocab_size: int = DEFAULT_VOCAB_SIZE,
    successors: int = DEFAULT_SUCCESSORS,
    alpha: float = DEFAULT_DIRICHLET_ALPHA,
    leak: float = DEFAULT_LEAK,
) -> MarkovChain:
    """The chain for a seed: the same seed always gives the same chain."""
    if not 2 <= vocab_size <= MAX_SYNTH_VOCAB:
        raise UserError(f"vocabulary size {vocab_size} is out of range: choose between 2 and {MAX_SYNTH_VOCAB}.")
    if not 1 <= successors <= vocab_size:
        raise UserError(f"{successors} successors per token is out of range: choose between 1 and the vocabulary size.")
    if not 0.0 < leak < 1.0:
        raise UserError(f"leak {leak} is out of range: choose a probability strictly between 0 and 1.")
    rng = np.random.default_rng(_seed_sequence(seed).spawn(1)[0])
    # Distinct successors per row: the first k of a random permutation of the vocabulary.
    succ = np.argsort(rng.random((vocab_size, vocab_size)), axis=1)[:, :successors]
    weights = rng.dirichlet(np.full(successors, alpha), size=vocab_size)
    return MarkovChain(vocab_size=vocab_size, successors=succ, weights=weights, leak=leak)


@dataclass(frozen=True)
class SynthInfo:
    """What `synthesize` wrote and the loss numbers that make the data meaningful."""

    out_dir: Path
    train_files: tuple[Path, ...]
    val_file: Path
    manifest: Path
    seed: int
    vocab_size: int
    train_tokens: int
    val_tokens: int
    entropy_floor_nats: float
    unigram_entropy_nats: float
    uniform_entropy_nats: float


def synthesize(
    out_dir: Path,
    train_shards: int = 4,
    tokens_per_shard: int = 1_000_000,
    val_tokens: int = 262_144,
    seed: int = 0,
    vocab_size: int = DEFAULT_VOCAB_SIZE,
) -> SynthInfo:
    """Write train and val shards drawn from the seed's chain, and `synth.json` describing them.

    The same arguments always give byte-identical files. Train shard i does not depend on
    how many shards are written, so asking for more shards only appends.
    """
    if train_shards < 1:
        raise UserError(f"--train-shards {train_shards} is too small: write at least one train shard.")
    if tokens_per_shard < 1 or val_tokens < 1:
        raise UserError("token counts must be positive: pass --tokens-per-shard and --val-tokens of at least 1.")
    if seed < 0:
        raise UserError(f"seed {seed} is negative: pass a seed of 0 or more.")
    out_dir = Path(out_dir)
    chain = make_chain(seed, vocab_size=vocab_size)
    # Stream 0 of the seed built the chain; the val shard and each train shard get their own.
    streams = _seed_sequence(seed).spawn(2 + train_shards)[1:]
    counts = [val_tokens] + [tokens_per_shard] * train_shards
    tokens = chain.sample_streams(counts, [np.random.default_rng(stream) for stream in streams])
    val_file = out_dir / VAL_NAME.format(index=0)
    write_shard(val_file, tokens[0])
    train_files = []
    for index in range(1, train_shards + 1):
        path = out_dir / TRAIN_NAME.format(index=index)
        write_shard(path, tokens[index])
        train_files.append(path)
    info = SynthInfo(
        out_dir=out_dir,
        train_files=tuple(train_files),
        val_file=val_file,
        manifest=out_dir / SYNTH_MANIFEST,
        seed=seed,
        vocab_size=vocab_size,
        train_tokens=train_shards * tokens_per_shard,
        val_tokens=val_tokens,
        entropy_floor_nats=chain.entropy_rate_nats(),
        unigram_entropy_nats=chain.unigram_entropy_nats(),
        uniform_entropy_nats=math.log(vocab_size),
    )
    atomic_write_json_readable(
        info.manifest,
        {
            "schema_version": SYNTH_SCHEMA_VERSION,
            "generator": "order-1 Markov chain, sparse Dirichlet transitions with a uniform leak",
            "seed": seed,
            "vocab_size": vocab_size,
            "successors_per_token": int(chain.successors.shape[1]),
            "dirichlet_alpha": DEFAULT_DIRICHLET_ALPHA,
            "leak": chain.leak,
            "chain_segment_tokens": CHAIN_SEGMENT_TOKENS,
            "train_shards": train_shards,
            "tokens_per_shard": tokens_per_shard,
            "val_tokens": val_tokens,
            "entropy_floor_nats": round(info.entropy_floor_nats, 6),
            "unigram_entropy_nats": round(info.unigram_entropy_nats, 6),
            "uniform_entropy_nats": round(info.uniform_entropy_nats, 6),
            "files": [p.name for p in (val_file, *train_files)],
        },
    )
    return info


def read_synth_manifest(out_dir: Path) -> dict:
    """The `synth.json` of a synthetic data directory."""
    path = Path(out_dir) / SYNTH_MANIFEST
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path} does not exist: create the data with `nanogpt-tui data synth --out {out_dir}`.") from None
    except json.JSONDecodeError as err:
        raise UserError(f"{path} is not valid JSON ({err.msg} at line {err.lineno}): regenerate it with `nanogpt-tui data synth`.") from None


def _seed_sequence(seed: int) -> np.random.SeedSequence:
    # A fixed tag keeps these streams apart from any other use of the same integer seed.
    return np.random.SeedSequence([seed, 0x5EED_DA7A])
