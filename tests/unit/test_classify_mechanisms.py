"""Mechanisms of the change classifier found misjudging human records (issue #19), each on small self-written
before/after code: scoping of systems names, and the others below."""

from __future__ import annotations

import textwrap

from nanogpt_tui.classify import ALGORITHMIC, HYPERPARAMETER, NONE, SYSTEMS, classify_sources


def src(text: str) -> str:
    return textwrap.dedent(text).lstrip()


def classify(old: str, new: str):
    return classify_sources({"train_gpt.py": src(old)}, {"train_gpt.py": src(new)})


# ------------------------------------------------------------------------------------------------ scoping

SETTINGS_PARAMETER = """
import torch
import torch.nn as nn
import torch._inductor.config as config

config.coordinate_descent_tuning = True

class GPT(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.embed = nn.Embedding(config.vocab_size, config.model_dim)
        self.blocks = nn.ModuleList([nn.Linear(config.model_dim, config.model_dim) for _ in range(config.num_layers)])
"""


def test_a_parameter_named_like_a_systems_import_is_the_functions_own_name():
    # The model's `config` parameter hides `torch._inductor.config` inside GPT.__init__: reading two more of the
    # model's settings there is a change of the model, not of the compiler's settings.
    new = SETTINGS_PARAMETER.replace(
        "        self.embed = nn.Embedding(config.vocab_size, config.model_dim)\n",
        "        self.embed = nn.Embedding(config.vocab_size, config.model_dim)\n"
        "        self.head = nn.Linear(config.model_dim, config.vocab_size)\n        self.softcap = config.softcap\n")
    result = classify(SETTINGS_PARAMETER, new)
    assert result.label == ALGORITHMIC, [e.text() for e in result.evidence]
    assert not any(e.kind == SYSTEMS for e in result.evidence), [e.text() for e in result.evidence]
    # The module-level name is still the compiler's settings.
    tuned = SETTINGS_PARAMETER.replace("config.coordinate_descent_tuning = True\n",
                                       "config.coordinate_descent_tuning = True\nconfig.max_autotune = config.coordinate_descent_tuning\n")
    assert classify(SETTINGS_PARAMETER, tuned).label == SYSTEMS
    # The settings object dropped for plain parameters: the old side's `config` was the parameter too.
    flat = SETTINGS_PARAMETER.replace("def __init__(self, config):", "def __init__(self, vocab_size, model_dim, n):") \
        .replace("config.vocab_size", "vocab_size").replace("config.model_dim", "model_dim") \
        .replace("config.num_layers", "n")
    result = classify(SETTINGS_PARAMETER, flat)
    assert not any(e.kind == SYSTEMS for e in result.evidence), [e.text() for e in result.evidence]


# ------------------------------------------------------------------------------------------------ builtins

ALL_REDUCE = """
import torch
import torch.distributed as dist

def sync(params):
    for p in params:
        dist.all_reduce(p.grad, op=dist.ReduceOp.AVG)
"""


def test_a_helper_adding_up_sizes_with_the_builtin_sum_computes_no_tensor():
    # Gradients all-reduced in flat buckets: the helper that groups parameters by size adds up counts with Python's
    # `sum`; it is bookkeeping around the new communication, not a new computation.
    new = ALL_REDUCE.replace("def sync(params):", '''def buckets_of(params, limit):
    buckets, current, size = [], [], 0
    for p in params:
        n = p.numel() * p.element_size()
        if size + n > limit and current:
            buckets.append(current)
            current, size = [], 0
        current.append(p)
        size += n
    totals = [sum(q.numel() for q in b) for b in buckets + [current]]
    offsets, offset = [], 0
    for t in totals:
        offsets.append((offset, offset + t))
        offset += t
    return buckets + [current], offsets

def sync(params):''').replace("        dist.all_reduce(p.grad, op=dist.ReduceOp.AVG)\n", """        pass
    buckets, offsets = buckets_of(params, 1 << 26)
    for b in buckets:
        flat = torch.cat([p.grad.flatten() for p in b])
        dist.all_reduce(flat, op=dist.ReduceOp.AVG)
""")
    result = classify(ALL_REDUCE, new)
    helper = next(e for e in result.evidence if (e.after or "").startswith("def buckets_of"))
    assert helper.kind == "plumbing", helper.text()
    assert result.label == SYSTEMS, [e.text() for e in result.evidence]


# ------------------------------------------------------------------------------------------------ moved code

OPTIMIZER = """
import torch
import torch.distributed as dist

class Muon(torch.optim.Optimizer):
    def step(self):
        for group in self.param_groups:
            lr, momentum = group['lr'], group['momentum']
            for p in group['params']:
                g = p.grad
                state = self.state[p]
                if 'momentum_buffer' not in state:
                    state['momentum_buffer'] = torch.zeros_like(g)
                buf = state['momentum_buffer']
                buf.mul_(momentum).add_(g)
                g = g.add(buf, alpha=momentum)
                g = orthogonalize(g)
                p.data.add_(g, alpha=-lr)
"""

SHARDED = """
import torch
import torch.distributed as dist

class Muon(torch.optim.Optimizer):
    def step(self):
        for group in self.param_groups:
            lr, momentum = group['lr'], group['momentum']
            total = sum(p.numel() for p in group['params'])
            flat = torch.zeros(total, device='cuda', dtype=torch.bfloat16)
            idx = 0
            for i, p in enumerate(group['params']):
                if i % self.world_size == self.rank:
                    g = p.grad
                    state = self.state[p]
                    if 'momentum_buffer' not in state:
                        state['momentum_buffer'] = torch.zeros_like(g)
                    buf = state['momentum_buffer']
                    buf.mul_(momentum).add_(g)
                    g = g.add(buf, alpha=momentum)
                    g = orthogonalize(g)
                    flat[idx:idx + p.numel()] = g.flatten()
                idx += p.numel()
            dist.all_reduce(flat, op=dist.ReduceOp.SUM)
            idx = 0
            for p in group['params']:
                g = flat[idx:idx + p.numel()].view_as(p.data).type_as(p.data)
                p.data.add_(g, alpha=-lr)
                idx += p.numel()
"""


def test_a_place_partly_made_of_moved_code_is_judged_by_what_is_left():
    # Each rank orthogonalises its share of the matrices and the updates are all-reduced: the momentum and update
    # statements only moved under `if i % world_size == rank`; what is new is the sharding and the collective.
    result = classify(OPTIMIZER, SHARDED)
    assert result.label == SYSTEMS, [e.text() for e in result.evidence]
    assert any(e.kind == SYSTEMS and "the rest moved" in e.why and "all_reduce" in e.why for e in result.evidence), \
        [e.text() for e in result.evidence]
    assert not any(e.kind == ALGORITHMIC for e in result.evidence), [e.text() for e in result.evidence]
    # A new computation beside moved code stays a computation: a new update rule (sign of the update).
    new_rule = SHARDED.replace("g = orthogonalize(g)\n", "g = orthogonalize(g).sign()\n                    "
                               "g = g * torch.rsqrt(g.square().mean())\n")
    rule = classify(OPTIMIZER, new_rule)
    assert rule.label == ALGORITHMIC and any(e.kind == ALGORITHMIC and ".sign" in e.why for e in rule.evidence), [e.text() for e in rule.evidence]


# ------------------------------------------------------------------------------------------------ logging

def test_logging_lines_inside_a_changed_block_do_not_weigh():
    # A new gate computed in the training step, with four lines printing about it: one line of computation
    # changed, not five.
    old = """
    import torch

    def train_step(model, x, step):
        loss = model(x)
        loss.backward()
    """
    new = """
    import torch

    def train_step(model, x, step):
        loss = model(x)
        gate = torch.sigmoid(loss.detach())
        if step % 100 == 0:
            print0(f"gate {gate}")
            print0(f"loss {loss}")
            print0("---")
        (gate * loss).backward()
    """
    result = classify(old, new)
    place = next(e for e in result.evidence if e.kind == ALGORITHMIC)
    assert place.weight == 3, place.text()  # the gate, the `if` header and the product: not the three prints


# ------------------------------------------------------------------------------------------------ knobs

def test_a_new_parameters_default_goes_with_the_code_that_reads_the_parameter():
    # `rank=0, world_size=1` come with the code that shards the work by rank: their defaults are that code's,
    # not two retuned values.
    old = """
    import torch
    import torch.distributed as dist

    class Muon(torch.optim.Optimizer):
        def __init__(self, params, lr=0.02):
            super().__init__(params, dict(lr=lr))
    """
    new = """
    import torch
    import torch.distributed as dist

    class Muon(torch.optim.Optimizer):
        def __init__(self, params, lr=0.02, rank=0, world_size=1):
            super().__init__(params, dict(lr=lr))
            self.rank = rank
            self.world_size = world_size
    """
    result = classify(old, new)
    defaults = [e for e in result.evidence if e.why.startswith("a knob added")]
    assert len(defaults) == 2 and all(e.kind == SYSTEMS for e in defaults), [e.text() for e in result.evidence]
    assert result.label == SYSTEMS


SKIPPED_BLOCK = """
import torch.nn as nn

class Block(nn.Module):
    def __init__(self, dim, layer_idx):
        super().__init__()
        self.attn = nn.Linear(dim, dim)
        self.mlp = nn.Linear(dim, dim)

    def forward(self, x):
        x = x + self.attn(x)
        x = x + self.mlp(x)
        return x
"""


def test_a_new_knob_read_by_a_changed_expression_goes_with_it():
    # The MLP of some layers dropped: the list of those layers is read by a changed expression (no statement of
    # its own), and is part of the architecture change, not a retuned value.
    new = SKIPPED_BLOCK.replace("        self.mlp = nn.Linear(dim, dim)\n",
                                "        SKIPPED = [0, 12]\n        self.mlp = None if layer_idx in SKIPPED else "
                                "nn.Linear(dim, dim)\n").replace(
        "        x = x + self.mlp(x)\n", "        if self.mlp is not None:\n            x = x + self.mlp(x)\n")
    result = classify(SKIPPED_BLOCK, new)
    knob = next(e for e in result.evidence if e.why.startswith("a knob added"))
    assert knob.kind == ALGORITHMIC, knob.text()
    assert result.label == ALGORITHMIC and result.shares[ALGORITHMIC] == 1.0, result.summary()


# ------------------------------------------------------------------------------------------------ signatures

def test_a_signatures_parameters_are_judged_where_they_are_used():
    # A parameter renamed and one added to a module's constructor, the training step made to reduce in place of
    # all-reduce: the signature is plumbing; the rename changes nothing, and the change is the communication.
    old = """
    import torch.nn as nn
    import torch.distributed as dist

    class Block(nn.Module):
        def __init__(self, model_dim, layer_idx):
            super().__init__()
            self.mlp = nn.Linear(model_dim, model_dim)

    def sync(loss):
        dist.all_reduce(loss, op=dist.ReduceOp.AVG)
    """
    new = """
    import torch.nn as nn
    import torch.distributed as dist

    class Block(nn.Module):
        def __init__(self, dim, layer_idx, max_seq_len):
            super().__init__()
            self.mlp = nn.Linear(dim, dim)

    def sync(loss):
        dist.reduce(loss, 0, op=dist.ReduceOp.AVG)
    """
    result = classify(old, new)
    signature = [e for e in result.evidence if "max_seq_len" in (e.after or "") and e.scope == "Block"]
    assert signature and all(e.kind == "plumbing" for e in signature), [e.text() for e in result.evidence]
    assert result.label == SYSTEMS, [e.text() for e in result.evidence]


TWO_OPTIMIZERS = """
import torch

class Muon(torch.optim.Optimizer):
    def step(self):
        for group in self.param_groups:
            for p in group['params']:
                buf = self.state[p]['momentum_buffer']
                buf.lerp_(p.grad, 1 - group['momentum'])
                update = orthogonalize(p.grad.lerp_(buf, group['momentum']))
                p.mul_(1 - group['lr'] * group['weight_decay'])
                p.add_(update, alpha=-group['lr'])

class NorMuon(torch.optim.Optimizer):
    def step(self):
        for group in self.param_groups:
            for p in group['params']:
                buf = self.state[p]['momentum_buffer']
                buf.lerp_(p.grad, 1 - group['momentum'])
                update = orthogonalize(p.grad.lerp_(buf, group['momentum']))
                update = update / update.norm(dim=-1, keepdim=True)
                p.mul_(1 - group['lr'] * group['weight_decay'])
                p.add_(update, alpha=-group['lr'])

optimizer = NorMuon(params, lr=0.05)
"""


def test_dropping_a_copy_of_code_the_new_version_keeps_weighs_nothing():
    # The unused Muon goes; NorMuon, which holds the same update, stays: with the lr halved, the change is the lr.
    start = TWO_OPTIMIZERS.index("class Muon")
    new = TWO_OPTIMIZERS[:start] + TWO_OPTIMIZERS[TWO_OPTIMIZERS.index("class NorMuon"):]
    new = new.replace("lr=0.05", "lr=0.025")
    result = classify(TWO_OPTIMIZERS, new)
    assert result.label == "hyperparameter", [e.text() for e in result.evidence]


# ------------------------------------------------------------------------------------------------ library optimizers

LIBRARY_ADAM = """
import torch
import torch.distributed as dist

def train(model, params):
    optimizer = torch.optim.Adam(params, lr=0.008, betas=(0.8, 0.95), eps=1e-10, fused=True)
    model().backward()
    for p in params:
        dist.all_reduce(p.grad, op=dist.ReduceOp.AVG)
    optimizer.step()
"""

SHARDED_ADAM = """
import torch
import torch.distributed as dist

class DistAdam(torch.optim.Optimizer):
    def __init__(self, params, lr=0.001, betas=(0.9, 0.999), eps=1e-8):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps))

    @torch.no_grad()
    def step(self):
        rank, world = dist.get_rank(), dist.get_world_size()
        for group in self.param_groups:
            beta1, beta2 = group['betas']
            for p in group['params']:
                n = p.size(0) // world
                g = torch.empty_like(p.grad[:n])
                dist.reduce_scatter_tensor(g, p.grad, op=dist.ReduceOp.AVG)
                p_slice = p[rank * n:(rank + 1) * n]
                state = self.state[p]
                if not state:
                    state['step'] = 0
                    state['exp_avg'] = torch.zeros_like(p_slice)
                    state['exp_avg_sq'] = torch.zeros_like(p_slice)
                state['step'] += 1
                state['exp_avg'].mul_(beta1).add_(g, alpha=1 - beta1)
                state['exp_avg_sq'].mul_(beta2).addcmul_(g, g, value=1 - beta2)
                denom = state['exp_avg_sq'].sqrt().add_(group['eps'])
                step_size = group['lr'] * (1 - beta2 ** state['step']) ** 0.5 / (1 - beta1 ** state['step'])
                p_slice.addcdiv_(state['exp_avg'], denom, value=-step_size)
                dist.all_gather_into_tensor(p, p_slice)

def train(model, params):
    optimizer = DistAdam(params, lr=0.008, betas=(0.8, 0.95), eps=1e-10)
    model().backward()
    optimizer.step()
"""


def test_an_optimizer_class_re_implementing_the_library_one_it_replaces_is_its_communication():
    # torch.optim.Adam replaced by a sharded Adam (reduce_scatter of the gradients, all_gather of the update): the
    # Adam update is the library's; the change is the communication.
    result = classify(LIBRARY_ADAM, SHARDED_ADAM)
    assert result.label == SYSTEMS, [e.text() for e in result.evidence]
    assert not any(e.kind == ALGORITHMIC for e in result.evidence if e.scope.startswith("DistAdam")), \
        [e.text() for e in result.evidence]
    # A new optimizer class that replaces nothing of the library's is the change's own computation.
    own = SHARDED_ADAM.replace("DistAdam(params, lr=0.008, betas=(0.8, 0.95), eps=1e-10)", "DistAdam(params)")
    assert any(e.kind == ALGORITHMIC for e in classify(LIBRARY_ADAM, own).evidence)


# ------------------------------------------------------------------------------------------------ subclasses

def test_a_module_swapped_for_its_subclass_is_judged_by_the_subclass():
    # Linear layers that keep fp32 weights and cast them at use: the swap nn.Linear -> CastedLinear in each layer
    # is no new computation; CastedLinear's own forward (a cast) is what changed.
    old = """
    import torch.nn as nn
    import torch.nn.functional as F

    class MLP(nn.Module):
        def __init__(self, dim):
            super().__init__()
            self.fc = nn.Linear(dim, 4 * dim)
            self.proj = nn.Linear(4 * dim, dim)
            self.gate = nn.Linear(dim, dim)

        def forward(self, x):
            return self.proj(F.relu(self.fc(x)).square()) * self.gate(x)
    """
    new = old.replace("class MLP(nn.Module):", '''class CastedLinear(nn.Linear):
        def forward(self, x):
            return F.linear(x, self.weight.to(x.dtype))

    class MLP(nn.Module):''').replace("= nn.Linear(", "= CastedLinear(")
    result = classify(old, new)
    swaps = [e for e in result.evidence if e.before == "nn.Linear"]
    assert len(swaps) == 3 and all(e.kind == "plumbing" for e in swaps), [e.text() for e in result.evidence]
    assert [e.scope for e in result.evidence if e.kind == ALGORITHMIC] in ([], ["<module>"]), \
        [e.text() for e in result.evidence]  # at most the new class itself


# ------------------------------------------------------------------------------------------------ literal indices

VALUE_EMBEDS = """
import torch
import torch.nn as nn
import torch.nn.functional as F

class GPT(nn.Module):
    def __init__(self, vocab_size, dim, num_layers):
        super().__init__()
        self.value_embeds = nn.ModuleList([nn.Embedding(vocab_size, dim) for _ in range(3)])
        self.blocks = nn.ModuleList([nn.Linear(dim, dim) for _ in range(num_layers)])

    def forward(self, idx):
        ve = [value_embed(idx) for value_embed in self.value_embeds]
        ve = [ve[0], ve[1], ve[2]] + [None] * (len(self.blocks) - 6) + [ve[0], ve[1], ve[2]]
        x = F.rms_norm(ve[0], (ve[0].size(-1),))
        for block, v in zip(self.blocks, ve):
            x = block(x) if v is None else block(x + v)
        return x[..., :12]

class Hyperparameters:
    num_iterations = 1560
    windows = [3, 7, 11]
"""


def test_a_literal_index_in_the_models_computation_picks_what_it_reads():
    # Which value embedding enters which layer (`ve[1]` -> `ve[0]`) is the model's structure, not a tuned value.
    new = VALUE_EMBEDS.replace("[ve[0], ve[1], ve[2]] + [None]", "[ve[1], ve[2], ve[0]] + [None]")
    result = classify(VALUE_EMBEDS, new)
    assert result.label == ALGORITHMIC, [e.text() for e in result.evidence]
    assert all(e.why.startswith("an index in forward") for e in result.evidence if e.change == "literal")
    # A slice's bound is a size, and an index outside the model's computation is a setting.
    for old, changed in (("x[..., :12]", "x[..., :16]"), ("num_iterations = 1560", "num_iterations = 1535")):
        assert classify(VALUE_EMBEDS, VALUE_EMBEDS.replace(old, changed)).label == HYPERPARAMETER


# ------------------------------------------------------------------------------------------------ string literals

PATHS = """
import os
import torch

class Hyperparameters:
    train_files = 'data/fineweb10B/fineweb_train_*.bin'
    attention = 'flex'

os.environ['NCCL_ALGO'] = 'Ring'
os.makedirs('logs', exist_ok=True)
"""


def test_a_file_path_names_where_files_are_and_a_plain_string_is_no_systems_setting():
    # The data moved one folder up and the logs into a folder of their own: nothing that trains changed.
    moved = PATHS.replace("'data/fineweb10B/", "'../data/fineweb10B/").replace("'logs'", "'../logs/two-valemb'")
    result = classify(PATHS, moved)
    assert result.label == NONE, [e.text() for e in result.evidence]
    # A string setting is no systems setting for being a string (only NCCL_*, TORCH_*, ... environment names are).
    assert classify(PATHS, PATHS.replace("'flex'", "'dense'")).label == HYPERPARAMETER
    assert classify(PATHS, PATHS.replace("'Ring'", "'Tree'")).label == SYSTEMS


# ------------------------------------------------------------------------------------------------ module settings

COMPILER_SETTINGS = """
import torch
import torch._dynamo

torch._dynamo.config.compiled_autograd = True

class Hyperparameters:
    num_iterations = 5960
"""


def test_an_attribute_set_on_an_imported_module_is_that_modules_setting():
    # Turning compiled autograd off is the compiler's setting, not a knob of the code removed.
    result = classify(COMPILER_SETTINGS, COMPILER_SETTINGS.replace("torch._dynamo.config.compiled_autograd = True\n", ""))
    assert result.label == SYSTEMS, [e.text() for e in result.evidence]
    # An attribute of the code's own object stays the code's own binding (a knob of the settings class).
    own = COMPILER_SETTINGS.replace("    num_iterations = 5960\n", "    num_iterations = 5960\n\nargs = Hyperparameters()\n")
    assert classify(own, own.replace("args = Hyperparameters()\n", "args = Hyperparameters()\nargs.val_every = 250\n")).label \
        == HYPERPARAMETER


# ------------------------------------------------------------------------------------------------ keyword knobs

MUON = """
import torch

class Muon(torch.optim.Optimizer):
    def __init__(self, params, lr=0.02, momentum=0.95, **extra):
        super().__init__(params, dict(lr=lr, momentum=momentum, **extra))

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            for p in group['params']:
                buf = self.state[p].setdefault('momentum_buffer', torch.zeros_like(p))
                buf.lerp_(p.grad, 1 - group['momentum'])
                p.add_(buf, alpha=-group['lr'])

model = torch.nn.Linear(768, 768)
optimizer = Muon(model.parameters(), lr=0.05, momentum=0.95)
"""


def test_a_new_keyword_argument_goes_with_the_code_that_reads_it():
    # An EMA of the update with its coefficient passed in as a new keyword: the coefficient is part of the new
    # computation, not a retuned setting.
    new = MUON.replace("        super().__init__(params, dict(lr=lr, momentum=momentum, **extra))\n",
                       "        super().__init__(params, dict(lr=lr, momentum=momentum, **extra))\n"
                       "        self.update_smoothing = extra.get('update_smoothing', 0.0)\n") \
        .replace("                p.add_(buf, alpha=-group['lr'])\n",
                 "                ema = self.state[p].setdefault('ema', torch.zeros_like(p))\n"
                 "                ema.lerp_(buf, 1 - self.update_smoothing)\n"
                 "                p.add_(ema, alpha=-group['lr'])\n") \
        .replace("lr=0.05, momentum=0.95)", "lr=0.05, momentum=0.95, update_smoothing=0.5)")
    result = classify(MUON, new)
    keyword = [e for e in result.evidence if e.after == "update_smoothing=0.5"]
    assert keyword and keyword[0].kind == ALGORITHMIC, [e.text() for e in result.evidence]
    # A new keyword no changed code reads is a setting of code that was already there.
    tuned = MUON.replace("lr=0.05, momentum=0.95)", "lr=0.05, momentum=0.95, nesterov=True)")
    assert classify(MUON, tuned).label == HYPERPARAMETER


def test_a_literal_key_in_the_optimizers_update_picks_which_state_it_uses():
    # The update now steps from another state buffer: which tensor the optimizer reads is its algorithm.
    new = MUON.replace("                p.add_(buf, alpha=-group['lr'])\n",
                       "                p.add_(self.state[p]['momentum_buffer'], alpha=-group['lr'])\n")
    swapped = new.replace("self.state[p]['momentum_buffer']", "self.state[p]['ema_buffer']")
    result = classify(new, swapped)
    assert result.label == ALGORITHMIC, [e.text() for e in result.evidence]
    # The same key outside the model's and optimizer's computation is a setting.
    tuned = MUON + "settings = {'mode': 'a'}\nmode = settings['mode']\n"
    assert classify(tuned, tuned.replace("settings['mode']", "settings['kind']")).label == HYPERPARAMETER
