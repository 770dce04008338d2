"""Rendering a report document as Markdown or as one self-contained HTML file (the figure inlined as a data URI).

Both come from the same list of blocks, so they say the same things in the same order."""

from __future__ import annotations

import base64
import datetime as dt
import functools
import html
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from nanogpt_tui.agents.render import env_secrets, mask_secrets
from nanogpt_tui.classify import KINDS
from nanogpt_tui.reports.ledger import LEDGER_KINDS
from nanogpt_tui.textsafe import neutralize

ITEMS_SHOWN = 200  # ledger rows shown per session (the JSON keeps them all)


@dataclass
class Block:
    kind: str  # h1 h2 h3 p list table code image details
    text: str = ""
    headers: Sequence[str] = ()
    rows: Sequence[Sequence[str]] = ()
    items: Sequence[str] = ()
    lang: str = ""
    right: frozenset[int] = frozenset()
    summary: str = ""  # a details block's summary line


# ------------------------------------------------------------------------------------------------ formatting

def _env_check_text(check: object) -> str:
    """The stack check as the report states it: the status, and MISMATCH ALLOWED where the session overrode it."""
    if not isinstance(check, dict):
        return "not checked (no image, or a session from before the check)"
    status = str(check.get("status", "unknown"))
    text = f"{status}: {check.get('reason', '')}"
    return ("MISMATCH ALLOWED (--allow-env-mismatch): " + text) if check.get("allowed") and status != "match" else text


def _f(value: Any, fmt: str = ".2f", none: str = "-") -> str:
    if value is None:
        return none
    try:
        return format(value, fmt)
    except (TypeError, ValueError):
        return str(value)


def _pct(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}%"


def _share(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.0f}%"


def _p(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.2g}" if value >= 1e-4 else f"{value:.1e}"


def _hours(value: float | None) -> str:
    if value is None:
        return "-"
    if value == 0:
        return "0"
    return f"{value:.3g}" if value < 10 else f"{value:.1f}"


def _when(iso: str | None) -> str:
    if not iso:
        return "-"
    try:
        t = dt.datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return iso
    return t.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


# ------------------------------------------------------------------------------------------------ blocks

def report_blocks(report: dict[str, Any], figure_ref: str) -> list[Block]:
    blocks = [Block("h1", f"Report: {report['title']}"),
              Block("p", f"Generated {_when(report['generated_at'])} by {report['generated_by']} "
                         f"(report schema {report['schema_version']})."),
              Block("image", figure_ref, items=[report["figure"]["description"]])]
    scale = report["scale"]
    scale_text = f"Scale: anchor {scale['anchor']}"
    if scale.get("target"):
        scale_text += f", target {scale['target']}"
    if scale.get("gap_s"):
        scale_text += f": 100% of human progress = {scale['gap_s']:.2f} s faster ({scale['basis']})."
    else:
        scale_text += "."
    blocks.append(Block("p", scale_text + (f" {scale['note']}" if scale.get("note") else "")))
    if scale.get("human_lines"):
        blocks.append(Block("details", summary="Human record lines", rows=[
            [h["label"], h["name"], _pct(h["percent"])] for h in scale["human_lines"]],
            headers=["record", "name", "% of progress"]))
    if len(report["sessions"]) > 1:
        blocks.append(Block("h2", "Summary"))
        rows = []
        for s in report["summary"]:
            sh = s["share_of_changes"]
            rows.append([s["id"], f"{s['agent']} / {s['strategy']}", s["status"], _pct(s["final_percent"]),
                         _f(s["final_seconds_faster"], "+.2f"), s["best_submission"] or "-",
                         f"{_hours(s['used_gpu_hours'])} / {_hours(s['total_gpu_hours'])}",
                         " · ".join(f"{k[:4]} {_share(sh.get(k))}" for k in KINDS),
                         "-" if s["cost_usd"] is None else f"${s['cost_usd']:.2f}"])
        blocks.append(Block("table", headers=["session", "agent / strategy", "status", "% progress", "s faster",
                                              "best", "GPU-h used / budget", "GPU-h on changes (hyp · alg · sys)",
                                              "cost"], rows=rows, right=frozenset({3, 4, 6, 8})))
    for s in report["sessions"]:
        blocks.extend(session_blocks(s, several=len(report["sessions"]) > 1))
    return blocks


def session_blocks(s: dict[str, Any], several: bool) -> list[Block]:
    out = [Block("h2", f"Session {s['id']}" if several else "Session")]
    model = f" ({s['agent_model']}" + (f", {s['agent_effort']}" if s.get("agent_effort") else "") + ")" \
        if s.get("agent_model") else ""
    out.append(Block("list", items=[
        f"Agent: {s['agent']}{model}; strategy {s['strategy']} (hash {s['strategy_hash'][:12] or '-'})",
        f"Anchor {s['anchor']}" + (f", target {s['target']}" if s.get("target") else ", no target"),
        f"Status: {s['budget']['ended_because']}",
        f"Session id: {s['id']}",
        *(["Sandbox: off (not sandboxed: the agent ran with this machine's network and files)"]
          if s.get("sandbox") == "off" else []),
    ]))
    p = s["progress"]
    out.append(Block("h3", "Progress"))
    if p["final_percent"] is not None:
        text = (f"At the end of the budget: **{p['final_percent']:.2f}% of human progress** "
                f"({p['final_seconds_faster']:+.2f} s faster than the anchor). Area under the curve: "
                f"{_f(p['area_percent_gpu_hours'], '.1f')} %·GPU-h, i.e. {_f(p['mean_percent_over_budget'], '.2f')}% "
                "on average over the budget.")
    else:
        text = (f"At the end of the budget: **{p['final_seconds_faster']:+.2f} s faster** than the anchor (no % of "
                f"human progress: the anchor/target pair is not on the human timeline). Area under the curve: "
                f"{_f(p['area_seconds_gpu_hours'], '.3g')} s·GPU-h.")
    if not p["complete"]:
        text += " The session is still running: the numbers may still rise."
    out.append(Block("p", text))
    if p["steps"]:
        out.append(Block("table", headers=["GPU-hours", "submission", "s faster", "% progress", "within budget"],
                         rows=[[_hours(st["gpu_hours"]), st["submission"] or "-", _f(st["seconds_faster"], "+.2f"),
                                _pct(st["percent"], 2), "yes" if st["within_budget"] else "no"] for st in p["steps"]],
                         right=frozenset({0, 2, 3})))

    out.append(Block("h3", "Submissions and verdicts"))
    if s["submissions"]:
        rows = []
        for r in s["submissions"]:
            mean = _f(r["mean_train_time_s"], ".3f")
            if r["mean_train_time_s"] is not None and r["ci95_half_width_s"] is not None:
                mean += f" ± {r['ci95_half_width_s']:.3f}"
            judge = r["judge"]["label"]
            if r["judge"].get("summary"):
                judge += f": {r['judge']['summary']}"
            # As the control room's verdict table: a speedup and a % only for a submission that counts.
            scored = r["counts"] and r["kind"] != "baseline"
            rows.append([r["submission"], r["outcome"] + (" (counts)" if r["counts"] else ""),
                         _hours(r["gpu_hours_at"]), _p(r["p_value"]), mean,
                         _f(r["seconds_faster"], "+.2f") if scored else "-",
                         _pct(r["percent_of_human_progress"], 2) if scored else "-", judge,
                         (r["change"] or {}).get("summary", "-"), "; ".join(r["reasons"]) or "-"])
        out.append(Block("table", headers=["submission", "outcome", "at GPU-h", "p (val_loss)",
                                           "mean time (s) ± 95% CI",
                                           "speedup (s)", "% progress", "judge", "change vs parent", "reasons"],
                         rows=rows, right=frozenset({2, 3, 4, 5, 6})))
    else:
        out.append(Block("p", "No submissions were validated."))

    b = s["budget"]
    out.append(Block("h3", "Budget"))
    out.append(Block("table", headers=["GPUs", "budget", "extended", "total", "used", "remaining", "started",
                                       "deadline", "finished"],
                     rows=[[str(b["gpus"]), _hours(b["budget_gpu_hours"]), _hours(b["extended_gpu_hours"]),
                            _hours(b["total_gpu_hours"]), _hours(b["used_gpu_hours"]),
                            _hours(b["remaining_gpu_hours"]), _when(b["started_at"]), _when(b["deadline"]),
                            _when(b["finished_at"])]], right=frozenset(range(6))))
    if b["extensions"]:
        out.append(Block("list", items=[f"{_when(e['at'])} (at {_hours(e['gpu_hours_at'])} GPU-h): extended by "
                                        f"{_hours(e['gpu_hours'])} GPU-h" + (f", {e['reason']}" if e["reason"] else "")
                                        for e in b["extensions"]]))
    out.append(Block("p", f"Why it ended: {b['ended_because']}."))
    if b["transitions"]:
        out.append(Block("table", headers=["at", "GPU-h", "status", "reason"],
                         rows=[[_when(t["at"]), _hours(t["gpu_hours_at"]), t["status"], t["reason"]]
                               for t in b["transitions"]], right=frozenset({1})))

    out.extend(change_blocks(s["changes"], s.get("human_kinds")))

    out.append(Block("h3", "Tokens and cost"))
    u = s["usage"]
    if u is None:
        out.append(Block("p", "No events file, so no token usage is known."))
    else:
        cost = "unknown" if u["cost_usd"] is None else f"${u['cost_usd']:.2f}"
        if u["cost_usd"] is not None and not u["cost_complete"]:
            cost += " (incomplete: some invocations reported no cost)"
        out.append(Block("table", headers=["input tokens", "of which cached", "output tokens", "total",
                                           "cost the CLI reported", "invocations", "counted by"],
                         rows=[[f"{u['input_tokens']:,}", f"{u['cached_input_tokens']:,}", f"{u['output_tokens']:,}",
                                f"{u['total_tokens']:,}", cost, str(u["invocations"]),
                                "the model gateway" if u.get("metered") else "the agent (its own events)"]],
                         right=frozenset({0, 1, 2, 3, 5})))
        if u.get("metered"):
            said = u.get("agent_reported")
            out.append(Block("p", f"Metered by the model gateway from the API's answers ({u['requests']:,} "
                                  "requests), where the agent cannot write"
                                  + ("" if said is None else f"; the agent's own events say {said['input_tokens']:,} "
                                     f"in and {said['output_tokens']:,} out, shown for comparison only") + "."))
        elif u["total_tokens"]:
            out.append(Block("p", "These figures are what the agent's own events say: the session ran without the "
                                  "model gateway, so nothing metered them."))
    c = s.get("cost")
    if c is not None:
        def usd(x):
            return "-" if x is None else f"${x:,.2f}"

        out.append(Block("table", headers=["cost (agent + judge)", "agent", "judge", "agent model",
                                           "models without a price"],
                         rows=[[usd(c["total"]), usd(c["agent"]), usd(c["judge"]), c["agent_model"] or "-",
                                ", ".join(c["unpriced_models"]) or "-"]], right=frozenset({0, 1, 2})))
        out.append(Block("p", "Dollars are worked out here from the tokens at the price table's rates (the "
                              f"providers' list prices as of {c['built_in_prices_as_of']} unless the config sets "
                              "others); the agent CLI's own figure is shown above for comparison and never used."))
    g = s.get("gpu")
    out.append(Block("h3", "GPU telemetry"))
    if g is None:
        out.append(Block("p", "No GPU samples (gpu.jsonl): no sampler ran on the session's host."))
    else:
        out.append(Block("table", headers=["samples", "GPUs", "mean utilisation", "mean power", "peak memory",
                                           "all idle"],
                         rows=[[str(g["samples"]), ",".join(map(str, g["gpus"])), _pct(g["mean_util_pct"]),
                                "-" if g["mean_power_w"] is None else f"{g['mean_power_w']:.0f} W",
                                _pct(g["peak_mem_pct"]), _pct(100 * g["idle_share"])]],
                         right=frozenset({0, 2, 3, 4, 5})))

    best = s["best_submission"]
    out.append(Block("h3", "Best submission against the anchor"))
    if best is None:
        out.append(Block("p", "No submission counted within the budget."))
    else:
        out.append(Block("p", f"{best['submission']}: {_f(best['seconds_faster'], '+.2f')} s faster, "
                              f"{_pct(best['percent_of_human_progress'], 2)} of human progress; "
                              f"{best['files_changed']} file(s) differ from {best['diff_against'] or 'the anchor'}."))
        if best["diff"]:
            out.append(Block("code", best["diff"], lang="diff"))
        elif best.get("diff_missing"):
            out.append(Block("p", f"No diff: {best['diff_missing']}."))

    r = s["reproducibility"]
    out.append(Block("h3", "Reproducibility"))
    facts = [("image", r["image"]), ("image id", r["image_id"]), ("backend / host", f"{r['backend']} / {r['host']}"),
             ("GPU", f"{r['gpu_model']}" + (f" x{r['gpu_count']}" if r.get("gpu_count") else "")),
             ("driver", r["driver_version"]), ("CUDA", r["cuda_version"]), ("PyTorch", r["torch_version"]),
             ("Python", r["python_version"]), ("agent model", r["agent_model"]), ("strategy hash", r["strategy_hash"]),
             ("anchor code sha256", ", ".join(f"{k} {v[:16]}" for k, v in r["anchor_code_sha256"].items()) or "-"),
             ("image stack vs anchor", _env_check_text(r.get("env_check"))),
             ("nanogpt-tui", r["nanogpt_tui_version"])]
    out.append(Block("table", headers=["what", "value"], rows=[[k, "-" if v is None else str(v)] for k, v in facts]))
    if r["sources"]:
        out.append(Block("p", "Read from: " + "; ".join(f"{k} in {v}" for k, v in sorted(r["sources"].items())) + "."))
    out.append(Block("details", summary="Config snapshot (session.json)",
                     text=json.dumps(r["config"], indent=2, sort_keys=True), lang="json"))
    if s["problems"]:
        out.append(Block("h3", "Problems"))
        out.append(Block("list", items=list(s["problems"])))
    return out


def change_blocks(c: dict[str, Any], human: dict[str, Any] | None = None) -> list[Block]:
    out = [Block("h3", "Where the GPU-hours went: kinds of change")]
    if not c["items"]:
        out.append(Block("p", "No experiments or submissions with code were found."))
        return out
    hours, of_used, of_changes = c["gpu_hours_by_kind"], c["share_of_used"], c["share_of_changes"]
    exp, sub = c["counts_by_kind"]["experiments"], c["counts_by_kind"]["submissions"]
    rows = [[k, _hours(hours[k]), _share(of_used.get(k)), _share(of_changes.get(k)) if k in KINDS else "",
             str(exp.get(k, 0)), str(sub.get(k, 0))] for k in LEDGER_KINDS]
    rows.append(["unattributed", _hours(c["unattributed_gpu_hours"]), _share(of_used.get("unattributed")), "", "", ""])
    out.append(Block("table", headers=["kind", "GPU-hours", "share of used", "share of changes", "experiments",
                                       "submissions"], rows=rows, right=frozenset({1, 2, 3, 4, 5})))
    out.append(Block("p", "none = no code change (a baseline or a re-run); unattributed = GPU-hours outside any "
                          "experiment or retiming (the agent reading, thinking, waiting). " + c["cost_rule"]))
    if human:
        # Both halves of the published finding side by side: the agent's GPU-hours, the human records' kinds.
        rows = [[k, _share(of_changes.get(k)) if k in KINDS else "-", str(human["by_label"].get(k, 0)),
                 _share(human["of_records"].get(k))] for k in (*KINDS, "mixed", "none")]
        out.append(Block("table", headers=["kind", "agent: share of GPU-hours on changes",
                                           f"human records {human['from']} -> {human['to']}", "human share"],
                         rows=rows, right=frozenset({1, 2, 3})))
    rows = []
    for it in c["items"][:ITEMS_SHOWN]:
        rows.append([it["name"], it["source"], it["parent"] or "-", it["summary"], it["declared_kind"] or "-",
                     it["status"] or "-", _hours(it["gpu_hours"]), (it["evidence"][0] if it["evidence"] else "-")])
    out.append(Block("table", headers=["item", "source", "parent", "kind", "declared", "status", "GPU-h",
                                       "first evidence"], rows=rows, right=frozenset({6})))
    if len(c["items"]) > ITEMS_SHOWN:
        out.append(Block("p", f"... and {len(c['items']) - ITEMS_SHOWN} more in report.json."))
    out.append(Block("p", "Parents: " + c["parent_rule"]))
    return out


# ------------------------------------------------------------------------------------------------ markdown

# What Markdown (CommonMark and GitHub's) would read as markup in text: backslash-escaped, so no raw HTML (a
# judge's `<script>`, a file named `<img onerror=...>`), link, code span or emphasis comes from the text. An
# underscore inside a word (record names) is no emphasis there and stays as it is; so does `>` past a line's start.
_MD_SPECIAL = re.compile(r"[\\`*\[\]|~<]|&(?=#?\w+;)|(?<!\w)_|_(?!\w)")


def _untrusted(text: object) -> str:
    """Any text bound for a report: keys masked, invisible and direction-changing characters shown as marks."""
    return neutralize(mask_secrets(str(text), _secrets()))


@functools.lru_cache(maxsize=1)
def _secrets() -> tuple[str, ...]:
    return env_secrets()


def md_text(text: object) -> str:
    """The one Markdown escaping: `text` shown literally, with our own `**bold**` kept as bold."""
    parts = _untrusted(text).replace("\r", " ").replace("\n", " ").split("**")
    escaped = [_MD_SPECIAL.sub(lambda m: "\\" + m.group(), part) for part in parts]
    line = "**".join(escaped) if len(parts) % 2 else "\\*\\*".join(escaped)  # an unpaired ** stays literal
    # No heading, list or quote from the text's start.
    return re.sub(r"^(\d+)([.)])", r"\1\\\2", re.sub(r"^([#+\-=>])", r"\\\1", line))


def _fence(text: str) -> str:
    """A code fence longer than any run of backticks in `text`, so the text cannot close it."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def to_markdown(blocks: Sequence[Block]) -> str:
    lines: list[str] = []
    for b in blocks:
        if b.kind in ("h1", "h2", "h3"):
            lines += [f"{'#' * int(b.kind[1])} {md_text(b.text)}", ""]
        elif b.kind == "p":
            lines += [md_text(b.text), ""]
        elif b.kind == "list":
            lines += [f"- {md_text(item)}" for item in b.items] + [""]
        elif b.kind == "image":
            caption = md_text(b.items[0]) if b.items else ""
            lines += [f"![progress]({b.text})", "", f"*{caption}*" if caption else "", ""]
        elif b.kind == "table":
            lines.append("| " + " | ".join(md_text(h) for h in b.headers) + " |")
            lines.append("|" + "|".join("---:" if i in b.right else "---" for i in range(len(b.headers))) + "|")
            lines += ["| " + " | ".join(md_text(c) for c in row) + " |" for row in b.rows]
            lines.append("")
        elif b.kind == "code":
            text = _untrusted(b.text)
            fence = _fence(text)
            lines += [f"{fence}{b.lang}", text, fence, ""]
        elif b.kind == "details":
            lines += ["<details>", f"<summary>{html_text(b.summary)}</summary>", ""]
            if b.rows:
                lines.append("| " + " | ".join(md_text(h) for h in b.headers) + " |")
                lines.append("|" + "|".join("---" for _ in b.headers) + "|")
                lines += ["| " + " | ".join(md_text(c) for c in row) + " |" for row in b.rows]
            else:
                text = _untrusted(b.text)
                fence = _fence(text)
                lines += [f"{fence}{b.lang}", text, fence]
            lines += ["", "</details>", ""]
    return "\n".join(lines).rstrip() + "\n"


# ------------------------------------------------------------------------------------------------ html

CSS = """
body{font:14px/1.45 -apple-system,BlinkMacSystemFont,"Segoe UI",Helvetica,Arial,sans-serif;color:#1d1d1f;
max-width:1180px;margin:24px auto;padding:0 16px}
h1{font-size:22px}h2{font-size:18px;border-bottom:1px solid #ddd;padding-bottom:4px;margin-top:32px}
h3{font-size:15px;margin-top:22px}
table{border-collapse:collapse;margin:8px 0 14px;font-size:12.5px}
th,td{border:1px solid #d9d9d9;padding:3px 7px;vertical-align:top;text-align:left}
th{background:#f4f4f4}td.r{text-align:right;font-variant-numeric:tabular-nums}
pre{background:#f7f7f7;border:1px solid #e3e3e3;padding:8px;overflow-x:auto;font-size:12px;line-height:1.3}
.add{color:#116329}.del{color:#a40e26}.hunk{color:#6f42c1}
figure{margin:12px 0}figure img{max-width:100%;height:auto;border:1px solid #eee}
figcaption{font-size:12px;color:#555}
"""


def html_text(text: object) -> str:
    """The one HTML escaping: `text` shown literally (keys masked, invisible characters as marks)."""
    return html.escape(_untrusted(text))


def _inline(text: str) -> str:
    """HTML for a line of report text: escaped, with our own **bold** kept."""
    parts = html_text(text).split("**")
    if len(parts) % 2 == 0:
        return "**".join(parts)
    return "".join(f"<strong>{p}</strong>" if i % 2 else p for i, p in enumerate(parts))


def _diff_html(text: str) -> str:
    out = []
    for line in text.split("\n"):
        e = html_text(line)
        if line.startswith("+") and not line.startswith("+++"):
            out.append(f'<span class="add">{e}</span>')
        elif line.startswith("-") and not line.startswith("---"):
            out.append(f'<span class="del">{e}</span>')
        elif line.startswith("@@"):
            out.append(f'<span class="hunk">{e}</span>')
        else:
            out.append(e)
    return "\n".join(out)


def to_html(blocks: Sequence[Block], title: str, png: bytes | None) -> str:
    body: list[str] = []
    for b in blocks:
        if b.kind in ("h1", "h2", "h3"):
            body.append(f"<{b.kind}>{_inline(b.text)}</{b.kind}>")
        elif b.kind == "p":
            body.append(f"<p>{_inline(b.text)}</p>")
        elif b.kind == "list":
            body.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in b.items) + "</ul>")
        elif b.kind == "image":
            caption = html_text(b.items[0]) if b.items else ""
            if png:
                src = "data:image/png;base64," + base64.b64encode(png).decode("ascii")
                body.append(f'<figure><img alt="progress figure" src="{src}"><figcaption>{caption}</figcaption>'
                            "</figure>")
            else:
                body.append(f"<p>(no figure: {caption})</p>")
        elif b.kind in ("table", "details") and b.rows:
            table = ["<table><thead><tr>" + "".join(f"<th>{html_text(str(h))}</th>" for h in b.headers)
                     + "</tr></thead><tbody>"]
            for row in b.rows:
                table.append("<tr>" + "".join(
                    f'<td class="r">{html_text(str(c))}</td>' if i in b.right else f"<td>{html_text(str(c))}</td>"
                    for i, c in enumerate(row)) + "</tr>")
            table.append("</tbody></table>")
            if b.kind == "details":
                body.append(f"<details><summary>{html_text(b.summary)}</summary>{''.join(table)}</details>")
            else:
                body.append("".join(table))
        elif b.kind == "code":
            inner = _diff_html(b.text) if b.lang == "diff" else html_text(b.text)
            body.append(f"<pre>{inner}</pre>")
        elif b.kind == "details":
            body.append(f"<details><summary>{html_text(b.summary)}</summary><pre>{html_text(b.text)}</pre>"
                        "</details>")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html_text(title)}</title><style>{CSS}</style></head><body>\n"
            + "\n".join(body) + "\n</body></html>\n")
