"""The file names, library names and limits the checks look for."""

from __future__ import annotations


ENTRY_SCRIPT = "train_gpt.py"
RUN_SCRIPT = "run.sh"

WALL_CLOCKS = frozenset({
    "time.perf_counter", "time.time", "time.monotonic", "time.perf_counter_ns", "time.time_ns", "time.monotonic_ns",
})
CLOCKS = WALL_CLOCKS | {"time.process_time", "time.thread_time", "time.process_time_ns", "time.thread_time_ns"}

COMPILE_KWARGS = frozenset({"fullgraph", "dynamic", "backend", "mode", "options", "disable"})

CONFIG_MODULES = {
    "torch._inductor.config": "inductor",
    "torch._dynamo.config": "dynamo",
    "torch._functorch.config": "functorch",
}
COMPILER_ENV_PREFIXES = ("TORCHINDUCTOR_", "TORCHDYNAMO_", "TORCH_COMPILE_")
RECOMPILE_KEYS = {"dynamo.recompile_limit", "dynamo.cache_size_limit"}

VAL_NAMES = ("val_tokens", "val_batch_size", "val_files")
TRACKED_NAMES = frozenset(VAL_NAMES + ("train_files",))

# Unit conversions allowed as constant factors in the time accumulation (s -> ms, us, ns).
TIME_UNITS = frozenset({1, 1000, 1e3, 1e6, 1e9, 1_000_000, 1_000_000_000})

SUBPROCESS_CALLS = frozenset({
    "os.system", "os.popen", "subprocess.run", "subprocess.call", "subprocess.check_call", "subprocess.check_output",
    "subprocess.Popen", "subprocess.getoutput", "subprocess.getstatusoutput",
})

# How deep the trace follows calls into locally defined functions, and how much it may record.
MAX_INLINE_DEPTH = 6
MAX_EVENTS = 400_000

SKIP_DIRS = frozenset({"__pycache__", ".git", ".venv", "venv", "node_modules"})
