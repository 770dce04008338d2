#!/usr/bin/env bash
# A stand-in agent harness for tests: prints a line every 0.1 s until stopped; with TICKER_IGNORE_INT it ignores
# SIGINT so the watchdog has to escalate to SIGKILL; with TICKER_LINES=N it exits by itself after N lines.
if [ -n "${TICKER_IGNORE_INT:-}" ]; then trap '' INT; fi
echo "ticker agent starting in $PWD"
n=0
while :; do
    n=$((n + 1))
    printf 'tick %d\n' "$n"
    if [ -n "${TICKER_LINES:-}" ] && [ "$n" -ge "$TICKER_LINES" ]; then exit "${TICKER_EXIT:-0}"; fi
    sleep 0.1
done
