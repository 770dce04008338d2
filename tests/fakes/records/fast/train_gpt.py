# A stand-in record for tests: the shape of a speedrun record (hyperparameters, a model built from blocks, a
# timed loop that validates every val_loss_every steps and prints the speedrun's log lines) without torch, so a
# whole session of the scripted agent runs in seconds. Training is simulated: train_time is the number of steps
# times the model's cost per step (1750 steps of the full model take FA3's 163.86 s), and val_loss follows the
# steps and the model's parts, with run-to-run noise.
import os
import random
import sys
import time
from dataclasses import dataclass

with open(sys.argv[0]) as f:
    code = f.read()


@dataclass
class Hyperparameters:
    train_files: str = "data/fineweb10B/fineweb_train_*.bin"
    val_files: str = "data/fineweb10B/fineweb_val_*.bin"
    val_tokens: int = 10485760  # fixed so that every record is validated on the same tokens
    val_batch_size: int = 4 * 64 * 1024 * 8
    num_iterations: int = 1750
    cooldown_frac: float = 0.45
    val_loss_every: int = 250


args = Hyperparameters()


class CausalSelfAttention:
    step_ms = 2.0
    loss_gain = 0.0012


class MLP:
    step_ms = 91.6342857
    loss_gain = 0.0


class Block:
    def __init__(self, dim: int, num_heads: int):
        self.attn = CausalSelfAttention()
        self.mlp = MLP()

    def parts(self):
        return [part for part in (getattr(self, "attn", None), self.mlp) if part is not None]


model = Block(dim=768, num_heads=6)
step_ms = sum(part.step_ms for part in model.parts())
floor = 3.2735 - sum(part.loss_gain for part in model.parts()) + 0.0012
rng = random.Random(int.from_bytes(os.urandom(4), "little"))


def val_loss_at(step: int, steps: int) -> float:
    # Fewer steps end a little higher: 0.00002 per step below 1750.
    return floor + 0.00002 * max(0, 1750 - steps) + 7.5 * (1 - step / steps) ** 2 + rng.gauss(0, 0.0002)


def print0(s: str) -> None:
    print(s, flush=True)


print0(code)
print0("=" * 100)
print0(f"Running Python {sys.version.split()[0]}")
training_time_ms = 0.0
train_steps = args.num_iterations
for step in range(train_steps + 1):
    last_step = step == train_steps
    if last_step or step % args.val_loss_every == 0:
        val_loss = val_loss_at(step, train_steps)
        print0(f"step:{step}/{train_steps} val_loss:{val_loss:.4f} train_time:{training_time_ms:.0f}ms "
               f"step_avg:{training_time_ms / max(step, 1):.2f}ms")
    if last_step:
        break
    training_time_ms += step_ms * (1 + rng.gauss(0, 0.0005))
time.sleep(0.01)
