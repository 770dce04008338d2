import os
import sys

# Read this file's code first, so that the log can begin with it (the speedrun's convention).
with open(sys.argv[0], "r") as f:
    code = f.read()

# The smoke record of nanogpt-tui: a tiny GPT trained the way a NanoGPT speedrun record is
# (fixed step count, 30 untimed warm-up steps undone afterwards, timer paused during
# validation, fixed validation tokens), small enough to finish in well under a minute on two
# CPU cores and in seconds on one GPU. It learns the synthetic shards written by
# `nanogpt-tui data synth`. Self-contained on purpose: it imports only torch, numpy and the
# standard library, because it is copied into agent workspaces and containers.

import copy
import glob
import itertools
import math
import time
import uuid
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

# -----------------------------------------------------------------------------
# Hyperparameters


@dataclass
class Hyperparameters:
    # data
    train_files = "data/fineweb10B/fineweb_train_*.bin"  # input .bin to train on
    val_files = "data/fineweb10B/fineweb_val_*.bin"  # input .bin to eval validation loss on
    val_tokens = 32768  # how many tokens of validation data; fixed, so every run is scored alike
    val_batch_size = 8 * 1024  # validation tokens per step, summed over all ranks
    train_batch_size = 16 * 128  # training tokens per step, summed over all ranks
    train_seq_len = 128  # tokens per training sequence
    # model
    vocab_size = 256
    num_layers = 1  # one MLP block maps the current token to the next token's logits
    num_heads = 4
    model_dim = 64
    # optimization
    num_iterations = 120  # number of training steps: fixed, never stop on time or loss
    lr = 0.03
    weight_decay = 0.0
    cooldown_frac = 0.8  # fraction of training spent decaying the learning rate
    # evaluation and logging
    warmup_steps = 30  # untimed steps that warm up kernels; their effect on the model is undone
    val_loss_every = 100  # every how many steps to evaluate val loss; 0 for only at the end
    save_checkpoint = False


args = Hyperparameters()

# -----------------------------------------------------------------------------
# Distributed and device setup: torchrun with several GPUs, or one process on the CPU

rank = int(os.environ.get("RANK", "0"))
world_size = int(os.environ.get("WORLD_SIZE", "1"))
local_rank = int(os.environ.get("LOCAL_RANK", "0"))
use_cuda = torch.cuda.is_available()
if use_cuda:
    device = torch.device("cuda", local_rank)
    torch.cuda.set_device(device)
else:
    device = torch.device("cpu")
    # One thread per process: this model's matrices are too small to gain from more, and
    # spinning OpenMP threads slow down many times over when another process wants a core.
    torch.set_num_threads(1)
distributed = "RANK" in os.environ and "WORLD_SIZE" in os.environ
if distributed:
    dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    dist.barrier()
master_process = rank == 0  # this process does the logging


def synchronize():
    if use_cuda:
        torch.cuda.synchronize()


def all_reduce_mean(tensor: Tensor):
    # gloo has no AVG reduction, so sum and divide on every backend.
    if world_size > 1:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
        tensor.div_(world_size)
    return tensor


# -----------------------------------------------------------------------------
# Data: the speedrun's .bin shards (256 int32 header, then uint16 tokens)


def load_data_shard(file: str) -> Tensor:
    header = np.fromfile(file, dtype="<i4", count=256)
    assert header.size == 256, f"{file} is too short for a shard header"
    assert header[0] == 20240520, f"magic number mismatch in the data .bin file {file}"
    assert header[1] == 1, f"unsupported version in the data .bin file {file}"
    num_tokens = int(header[2])
    tokens = np.fromfile(file, dtype="<u2", count=num_tokens, offset=256 * 4)
    assert tokens.size == num_tokens, f"{file} holds fewer tokens than its header states"
    return torch.from_numpy(tokens.astype(np.int32))


def distributed_data_generator(filename_pattern: str, batch_size: int, repeat: bool):
    """Yield (inputs, targets) of batch_size // world_size tokens each; rank r reads its own slice."""
    files = sorted(glob.glob(filename_pattern))
    assert files, f"no files match {filename_pattern}: create them with `nanogpt-tui data synth`"
    assert batch_size % world_size == 0
    local_batch_size = batch_size // world_size
    file_iter = itertools.cycle(files) if repeat else iter(files)
    tokens, pos = load_data_shard(next(file_iter)), 0
    while True:
        if pos + batch_size + 1 > len(tokens):
            next_file = next(file_iter, None)
            assert next_file is not None, f"ran out of tokens in {filename_pattern}: write larger shards"
            tokens, pos = load_data_shard(next_file), 0
        buf = tokens[pos + rank * local_batch_size :][: local_batch_size + 1]
        inputs = buf[:-1].to(device=device, non_blocking=True)
        targets = buf[1:].to(device=device, dtype=torch.int64, non_blocking=True)
        pos += batch_size
        yield inputs, targets


# -----------------------------------------------------------------------------
# The model: a tiny GPT (rotary attention with QK norm, ReLU^2 MLP, untied head)


def norm(x: Tensor) -> Tensor:
    return F.rms_norm(x, (x.size(-1),))


class Rotary(nn.Module):
    def __init__(self, head_dim: int, max_seq_len: int):
        super().__init__()
        freqs = (1 / 1024) ** torch.linspace(0, 1, steps=head_dim // 2, dtype=torch.float32)
        angles = torch.outer(torch.arange(max_seq_len, dtype=torch.float32), freqs)
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("sin", angles.sin(), persistent=False)

    def forward(self, x: Tensor) -> Tensor:  # x: (B, T, H, D)
        cos = self.cos[None, : x.size(1), None, :]
        sin = self.sin[None, : x.size(1), None, :]
        x1, x2 = x.float().chunk(2, dim=-1)
        return torch.cat((x1 * cos + x2 * sin, x2 * cos - x1 * sin), dim=-1).type_as(x)


class CausalSelfAttention(nn.Module):
    def __init__(self, dim: int, num_heads: int, max_seq_len: int):
        super().__init__()
        assert dim % num_heads == 0
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=False)
        self.proj = nn.Linear(dim, dim, bias=False)
        nn.init.zeros_(self.proj.weight)  # each block starts as the identity
        self.rotary = Rotary(self.head_dim, max_seq_len)

    def forward(self, x: Tensor) -> Tensor:
        B, T, _ = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.num_heads, self.head_dim).unbind(dim=2)
        q, k = self.rotary(norm(q)), self.rotary(norm(k))
        y = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=True)
        return self.proj(y.transpose(1, 2).reshape(B, T, -1))


class MLP(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.fc = nn.Linear(dim, 4 * dim, bias=False)
        self.proj = nn.Linear(4 * dim, dim, bias=False)
        nn.init.zeros_(self.proj.weight)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(F.relu(self.fc(x)).square())


class Block(nn.Module):
    def __init__(self, dim: int, num_heads: int, max_seq_len: int):
        super().__init__()
        # The shards are an order-1 Markov chain: the next token depends only on the current one, which
        # the MLP already sees, so attention has nothing to find. Blocks are MLP-only.
        self.mlp = MLP(dim)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.mlp(norm(x))


class GPT(nn.Module):
    def __init__(self, vocab_size: int, num_layers: int, num_heads: int, model_dim: int, max_seq_len: int):
        super().__init__()
        self.embed = nn.Embedding(vocab_size, model_dim)
        self.blocks = nn.ModuleList([Block(model_dim, num_heads, max_seq_len) for _ in range(num_layers)])
        self.lm_head = nn.Linear(model_dim, vocab_size, bias=False)
        nn.init.zeros_(self.lm_head.weight)  # so step 0 predicts uniformly: val_loss = ln(vocab)

    def forward(self, inputs: Tensor, targets: Tensor, seq_len: int) -> Tensor:
        idx = inputs.view(-1, seq_len)
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_cuda):
            x = norm(self.embed(idx))
            for block in self.blocks:
                x = block(x)
            logits = self.lm_head(norm(x)).float()
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))


# -----------------------------------------------------------------------------
# The optimizer: Adam with decoupled weight decay, as a plain class like the speedrun's own
# optimizers (subclassing torch.optim.Optimizer imports torch._dynamo, which alone takes
# longer on a small CPU than a tenth of this run).


class Adam:
    def __init__(self, params, lr: float, betas=(0.9, 0.95), eps: float = 1e-10, weight_decay: float = 0.0):
        self.params = [p for p in params if p.requires_grad]
        self.initial_lr = lr
        self.lr = lr
        self.betas = betas
        self.eps = eps
        self.weight_decay = weight_decay
        self.steps = 0
        self.exp_avg = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]

    @torch.no_grad()
    def step(self):
        self.steps += 1
        beta1, beta2 = self.betas
        bias1 = 1 - beta1**self.steps
        bias2 = 1 - beta2**self.steps
        for p, m, v in zip(self.params, self.exp_avg, self.exp_avg_sq):
            g = p.grad
            m.lerp_(g, 1 - beta1)
            v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
            if self.weight_decay:
                p.mul_(1 - self.lr * self.weight_decay)
            p.addcdiv_(m, (v / bias2).sqrt_().add_(self.eps), value=-self.lr / bias1)

    def zero_grad(self, set_to_none: bool = True):
        for p in self.params:
            p.grad = None

    def state_dict(self) -> dict:
        return dict(steps=self.steps, lr=self.lr, exp_avg=self.exp_avg, exp_avg_sq=self.exp_avg_sq)

    def load_state_dict(self, state: dict):
        self.steps = state["steps"]
        self.lr = state["lr"]
        for mine, theirs in zip(self.exp_avg + self.exp_avg_sq, state["exp_avg"] + state["exp_avg_sq"]):
            mine.copy_(theirs)


# -----------------------------------------------------------------------------
# int main

# A fresh seed per run unless SEED is given, so repeated runs show the run-to-run spread
# that the record's significance test is about.
seed = int(os.environ["SEED"]) if "SEED" in os.environ else int.from_bytes(os.urandom(4), "little")
torch.manual_seed(seed)

run_id = uuid.uuid4()
logfile = None
if master_process:
    os.makedirs("logs", exist_ok=True)
    logfile = f"logs/{run_id}.txt"


def print0(s, console=True):
    if master_process:
        with open(logfile, "a") as f:
            if console:
                print(s, flush=True)
            print(s, file=f)


# begin by printing this file (the Python code)
print0(code)
print0("=" * 100)
print0(f"Running Python {sys.version}")
print0(f"Running PyTorch {torch.version.__version__} on {device.type}, world size {world_size}, seed {seed}")
print0(f"Logging to {logfile}")
print0("=" * 100)

assert args.train_batch_size % (world_size * args.train_seq_len) == 0
assert args.val_batch_size % (world_size * args.train_seq_len) == 0
assert args.val_tokens % args.val_batch_size == 0
model: nn.Module = GPT(
    vocab_size=args.vocab_size,
    num_layers=args.num_layers,
    num_heads=args.num_heads,
    model_dim=args.model_dim,
    max_seq_len=args.train_seq_len,
).to(device)
if world_size > 1:
    for param in model.parameters():
        dist.broadcast(param.detach(), 0)
optimizer = Adam(model.parameters(), lr=args.lr, betas=(0.9, 0.95), eps=1e-10, weight_decay=args.weight_decay)
if use_cuda:
    # Inductor on the CPU takes longer to compile than this whole run takes to train.
    model = torch.compile(model, dynamic=False)


def get_lr(step: int) -> float:
    """Learning-rate multiplier: constant, then a linear cooldown to 0 over the last 80% of training."""
    x = step / args.num_iterations
    assert 0 <= x < 1
    if x < 1 - args.cooldown_frac:
        return 1.0
    w = (1 - x) / args.cooldown_frac
    return w * 1.0 + (1 - w) * 0.0


def train_step(step: int, inputs: Tensor, targets: Tensor):
    loss = model(inputs, targets, args.train_seq_len)
    loss.backward()
    for param in model.parameters():
        all_reduce_mean(param.grad)
    optimizer.lr = optimizer.initial_lr * get_lr(step)
    optimizer.step()
    model.zero_grad(set_to_none=True)


########################################
#            Warmup kernels            #
########################################

# Warm up the training and validation code, then restore the initial state so that the
# warm-up gives no training advantage.
initial_state = dict(model=copy.deepcopy(model.state_dict()), optimizer=copy.deepcopy(optimizer.state_dict()))
train_loader = distributed_data_generator(args.train_files, args.train_batch_size, repeat=True)
for step in range(args.warmup_steps):
    inputs, targets = next(train_loader)
    train_step(step, inputs, targets)
model.eval()
with torch.no_grad():
    val_loader = distributed_data_generator(args.val_files, args.val_batch_size, repeat=False)
    inputs, targets = next(val_loader)
    model(inputs, targets, args.train_seq_len)
model.train()
model.load_state_dict(initial_state["model"])
optimizer.load_state_dict(initial_state["optimizer"])
del train_loader, val_loader, initial_state

########################################
#        Training and validation       #
########################################

train_loader = distributed_data_generator(args.train_files, args.train_batch_size, repeat=True)
training_time_ms = 0
# start the clock
synchronize()
t0 = time.perf_counter()
train_steps = args.num_iterations
for step in range(train_steps + 1):
    last_step = step == train_steps
    # --------------- VALIDATION SECTION -----------------
    if last_step or (args.val_loss_every > 0 and step % args.val_loss_every == 0):
        # stop the clock
        synchronize()
        training_time_ms += 1000 * (time.perf_counter() - t0)
        model.eval()
        val_steps = args.val_tokens // args.val_batch_size
        val_loader = distributed_data_generator(args.val_files, args.val_batch_size, repeat=False)
        val_loss = torch.zeros((), device=device)
        with torch.no_grad():
            for _ in range(val_steps):
                inputs, targets = next(val_loader)
                val_loss += model(inputs, targets, args.train_seq_len)
        val_loss /= val_steps
        del val_loader
        all_reduce_mean(val_loss)
        step_avg = training_time_ms / step if step > 0 else math.nan
        print0(
            f"step:{step}/{train_steps} val_loss:{val_loss.item():.4f} "
            f"train_time:{training_time_ms:.0f}ms step_avg:{step_avg:.2f}ms"
        )
        model.train()
        # start the clock again
        synchronize()
        t0 = time.perf_counter()

    if last_step:
        if master_process and args.save_checkpoint:
            log = dict(step=step, code=code, model=model.state_dict(), optimizer=optimizer.state_dict())
            os.makedirs(f"logs/{run_id}", exist_ok=True)
            torch.save(log, f"logs/{run_id}/state_step{step:06d}.pt")
        # the last step only has the validation loop, so break to avoid training
        break

    # --------------- TRAINING SECTION -----------------
    inputs, targets = next(train_loader)
    train_step(step, inputs, targets)

    # logging
    approx_training_time_ms = training_time_ms + 1000 * (time.perf_counter() - t0)
    print0(
        f"step:{step + 1}/{train_steps} train_time:{approx_training_time_ms:.0f}ms "
        f"step_avg:{approx_training_time_ms / (step + 1):.2f}ms"
    )

print0(f"peak memory allocated: {torch.cuda.max_memory_allocated() // 1024 // 1024 if use_cuda else 0} MiB")
if distributed:
    dist.destroy_process_group()
