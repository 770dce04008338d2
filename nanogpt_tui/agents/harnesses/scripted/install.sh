#!/usr/bin/env bash
# The scripted agent is part of nanogpt_tui and needs no CLI, API or key: nothing to install.
echo "scripted agent: nothing to install (offline, no API, no key)"
