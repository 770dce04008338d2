"""The host/container boundary in one place (standard library only): the session layout and mount points (`layout`),
the `BENCHMARK_*` environment names (`env`), the deadline file (`deadline`) and the runner's exit record
(`runner_exit`). Everything else imports these names; nothing spells them again."""
