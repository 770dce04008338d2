"""Mechanisms of the change classifier found misjudging human records (issue #19), each on small self-written
before/after code: scoping of systems names, and the others below."""

from __future__ import annotations

import textwrap

from nanogpt_tui.classify import ALGORITHMIC, SYSTEMS, classify_sources


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
