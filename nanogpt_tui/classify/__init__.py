"""Classifying a code change against its parent as hyperparameter tuning, an algorithmic change or systems work.

Headless and standard library only (`ast`, `difflib`). The kinds:

- `hyperparameter`: only literal values changed: learning rates, step counts, schedule constants, sizes,
  tuples of window sizes (`1750 -> 1700`, `(3, 7, 11) -> (3, 5, 11)`, `2 * 1024 -> 3 * 1024`); also a
  knob added or removed (an assignment of a literal at module level, in a class or in `__init__`, a literal
  parameter default, a literal keyword argument such as `head_dim=128`), a literal replaced by a reference to
  a knob, and the arithmetic shape of a schedule function (`get_lr`, `*_schedule`, `*warmup*`, ...) or of a
  hyperparameter class's field (`Hyperparameters`, `*Config`, `Args`, `*Settings`, `HParams`: anchored, so
  `AttnArgs` is not one). State set up inside a function (`idx = 0`, `futures = []`, `self.thread = None`)
  is no knob: it goes with the code that uses it.
- `systems`: kernels, compilation, communication, precision plumbing, host-side concurrency: a change whose
  changed names are mostly those of `torch.compile`, Inductor/Dynamo, Triton, `torch.distributed`
  collectives, CUDA streams and graphs, pinned memory, dtypes and casts (`.bfloat16()`, `.float()`,
  `.to(dtype=torch.float32)`, `.type_as(...)`, fp8, autocast), attention kernels (FlashAttention, flex
  attention, SDPA), threads, events, queues and executors; any change inside a `@triton.jit` function or a
  `torch.library` custom op, or in a file of kernels (named so, `triton_kernels.py`, or mostly kernels:
  importing triton is not enough, every 2025 record's single train_gpt.py does); a literal inside a systems
  call or setting (`torch.compile(dynamic=...)`, `NCCL_*`); a change in the header of a statement whose body
  is systems work (`if isinstance(m, (nn.Embedding, nn.Linear)): m.bfloat16()`); run.sh. In the share of
  changed names, names the changed code binds itself (its locals, parameters, the attributes it assigns) and
  language glue (`len`, `.append`, `.size`) are left out, names bound to a thread, event, queue, stream or
  future (or an instance of the file's own class wrapping one) count as systems, and dtype/device/rank
  plumbing counts fully where it is what changed, half inside wholly new code.
- `algorithmic`: any other change of structure: the model, the optimizer, data handling, the loss; also a literal
  that sets the model's depth (the count in the `range(...)` a `ModuleList`/`Sequential` is built with, or the
  default of a knob of that name: `num_layers = 2 -> 1`), while widths and step counts stay tuning.
- `none`: nothing that runs changed (comments, docstrings, formatting, log messages, reordered defs,
  type annotations, a consistent rename of a name the code defines, the run id or log path).

A change usually touches several places; each changed place (an *evidence* item: file, line, the
enclosing scope, the AST node types, before/after, its weight) gets a kind of its own, and the change is weighed:
each kind's weight is the lines of code its places changed (a literal weighs half a line), each place's lines times
its nature's factor (`NATURE_WEIGHT`: a changed tensor computation in the model, loss or optimizer counts double,
a place whose systems names are only dtype, device, `.to(...)` and rank/world_size counts half: data movement
around a computation is not a kernel), and the change's kind is the kind holding the most weight, **mixed** when
none holds at least 0.6 of it (`DOMINANT_SHARE`, the rule of our labels), with the shares.
A structural change with no computation of its own outside the model and optimizer (control flow, bookkeeping,
arithmetic on counters), or in a model or optimizer class's method other than its computation (`forward`, `step`,
a module's constructor) that computes nothing (`load_state_dict`, parameter groups), is *plumbing* and takes the
kind of the rest; code moved elsewhere in the change (into a
new file, a helper, a class) and the same computation re-implemented (an optimizer rewritten as one class) do not
count as new work, and a computation place partly made of moved statements is judged by the rest (an update moved
under `if i % world_size == rank` beside a new all_reduce is the communication), nor does an optimizer class's
update that re-implements the PyTorch optimizer the change stops using (a sharded Adam for `torch.optim.Adam`); a class or long function added whole is judged method by method, statement by statement.

The package, by concern: `model` (kinds, evidence, classification), `syntax` (AST helpers), the evidence of each
kind (`systems`, `knobs` for hyperparameters, `neutral` for no change), `places` (judging one changed place),
`diff` (walking two versions side by side), `decision` (the kind from the evidence), `sources` (entry points) and
`distance`.
"""

from __future__ import annotations

from nanogpt_tui.classify.distance import code_distance, nearest
from nanogpt_tui.classify.knobs import KNOB_CLASS, SCHEDULE_SCOPE, literal_value
from nanogpt_tui.classify.model import ALGORITHMIC, DOMINANT_SHARE, HYPERPARAMETER, KINDS, MIXED, NEUTRAL, NONE, \
    PRECEDENCE, SYSTEMS, Classification, Evidence
from nanogpt_tui.classify.sources import CODE_SUFFIXES, classify_dirs, classify_sources, code_files
from nanogpt_tui.classify.syntax import dotted, is_literal
from nanogpt_tui.classify.systems import is_systems_token, is_weak_systems_token, systems_names

__all__ = [
    "ALGORITHMIC", "CODE_SUFFIXES", "DOMINANT_SHARE", "HYPERPARAMETER", "MIXED", "KINDS", "KNOB_CLASS", "NEUTRAL", "NONE", "PRECEDENCE",
    "SCHEDULE_SCOPE", "SYSTEMS", "Classification", "Evidence", "classify_dirs", "classify_sources", "code_distance",
    "code_files", "dotted", "is_literal", "is_systems_token", "is_weak_systems_token", "literal_value", "nearest",
    "systems_names",
]
