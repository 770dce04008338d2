"""The Events tab as a transcript: one node per turn (time, tokens, cost), its messages, reasoning, errors,
submissions and verdicts, and tool calls that expand to their inputs and outputs. Labels are `Text` built from
sanitised, key-masked strings: agent output is never read as markup or terminal control."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Tree
from textual.widgets.tree import TreeNode

from nanogpt_tui.agents.render import env_secrets, mask_secrets, sanitize, sanitize_lines
from nanogpt_tui.tui.data.formatting import format_tokens
from nanogpt_tui.tui.data.transcript import Item, Transcript, Turn

FIRST_LINE_CHARS = 160
DETAIL_LINES = 40  # lines of a tool's input or output shown when expanded
EXPANDED_TURNS = 3  # the last turns start open
KIND_STYLE = {"message": "", "user": "cyan", "reasoning": "italic bright_black", "error": "bold red",
              "submission": "bold yellow", "verdict": "bold magenta", "status": "bright_black", "start": "green",
              "other": "bright_black"}
KIND_WORD = {"message": "say", "user": "user", "reasoning": "think", "error": "error", "submission": "submit",
             "verdict": "verdict", "status": "note", "start": "start", "other": "raw"}


class TranscriptView(Tree):
    """A session's transcript; `show` replaces it (keeping which turns were open), `reveal` jumps to an item."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(Text("transcript"), id=id)
        self.show_root = False
        self.transcript: Transcript | None = None
        self._secrets = env_secrets()
        self._items: dict[tuple[int, int], TreeNode] = {}
        self._turns: dict[int, TreeNode] = {}

    def _clean(self, text: str | None) -> str:
        return mask_secrets(sanitize(text or ""), self._secrets)

    def _first_line(self, text: str | None) -> str:
        """The text's first non-blank line, plain and masked, with … where more follows."""
        lines = [line.strip() for line in sanitize_lines(text or "") if line.strip()]
        if not lines:
            return ""
        line = mask_secrets(lines[0], self._secrets)
        if len(line) > FIRST_LINE_CHARS:
            return line[:FIRST_LINE_CHARS] + " …"
        return line + (" …" if len(lines) > 1 else "")

    def _turn_label(self, turn: Turn) -> Text:
        label = Text(no_wrap=True, overflow="ellipsis")
        label.append(f"turn {turn.index}", style="bold")
        if turn.started_at:
            label.append(f" · {turn.started_at[11:19]}", style="bright_black")
        calls = len(turn.tool_calls)
        if calls:
            label.append(f" · {calls} tool call{'s' if calls != 1 else ''}")
        if turn.usage:
            label.append(f" · {format_tokens(turn.usage.get('input_tokens', 0))} in "
                         f"({format_tokens(turn.usage.get('cached_input_tokens', 0))} cached) / "
                         f"{format_tokens(turn.usage.get('output_tokens', 0))} out", style="cyan")
        if turn.cost_usd is not None:
            label.append(f" · ${turn.cost_usd:.4f} (CLI)", style="cyan")
        if any(i.kind == "error" for i in turn.items):
            label.append(" · error", style="bold red")
        for item in turn.items:
            if item.kind == "verdict":
                label.append(f" · verdict {item.submission}: {item.outcome}", style="bold magenta")
        # What the turn was about, so a closed turn reads without opening it: its first words, else its first call.
        said = next((i for i in turn.items if i.kind in ("message", "user", "reasoning", "error") and i.text), None)
        if said is not None:
            label.append(f" · {KIND_WORD[said.kind]}: {self._first_line(said.text)}", style="bright_black")
        elif turn.tool_calls:
            tool = turn.tool_calls[0]
            label.append(f" · {self._clean(tool.name)} {self._first_line(tool.command or tool.file or tool.input)}",
                         style="bright_black")
        return label

    def _item_label(self, item: Item) -> Text:
        label = Text(no_wrap=True, overflow="ellipsis")
        if item.tool is not None:
            tool = item.tool
            state = ("…" if tool.output is None else "ok" if tool.ok is not False else "failed")
            label.append(f"tool {self._clean(tool.name)}", style="bold blue")
            label.append(f" [{state}]", style="red" if state == "failed" else "bright_black")
            what = tool.command or tool.file or tool.input
            if what:
                label.append(" " + self._first_line(what))
            return label
        label.append(f"{KIND_WORD.get(item.kind, item.kind)}: ", style="bold " + KIND_STYLE.get(item.kind, ""))
        text = item.text
        if item.kind == "verdict" and not text:
            text = f"{item.submission}: {item.outcome}"
        elif item.kind == "submission" and not text:
            text = f"{item.submission} (retiming starts)"
        label.append(self._first_line(text), style=KIND_STYLE.get(item.kind, ""))
        return label

    def _add_detail(self, node: TreeNode, title: str, text: str | None, style: str = "") -> None:
        lines = [mask_secrets(line, self._secrets) for line in sanitize_lines((text or "").strip("\n"))]
        sub = node.add(Text(f"{title} ({len(lines)} line{'s' if len(lines) != 1 else ''})", style="bold"),
                       expand=False)
        for line in lines[:DETAIL_LINES]:
            sub.add_leaf(Text(line, style=style, no_wrap=True, overflow="ellipsis"))
        if len(lines) > DETAIL_LINES:
            sub.add_leaf(Text(f"… {len(lines) - DETAIL_LINES} more lines (nanogpt-tui sessions transcript ID)",
                              style="bright_black"))

    def show(self, transcript: Transcript) -> None:
        was_open = {index for index, node in self._turns.items() if node.is_expanded}
        fresh = self.transcript is None
        self.transcript = transcript
        self.clear()
        self._items, self._turns = {}, {}
        last = transcript.turns[-EXPANDED_TURNS:] if transcript.turns else []
        for turn in transcript.turns:
            open_ = turn.index in was_open or (fresh and turn in last) or turn is transcript.turns[-1]
            node = self.root.add(self._turn_label(turn), data=("turn", turn.index), expand=open_)
            self._turns[turn.index] = node
            for i, item in enumerate(turn.items):
                if item.tool is not None:
                    child = node.add(self._item_label(item), data=("item", turn.index, i), expand=False)
                    if item.tool.command:
                        self._add_detail(child, "command", item.tool.command)
                    if item.tool.input:
                        self._add_detail(child, "input", item.tool.input)
                    if item.tool.output is not None:
                        self._add_detail(child, "output", item.tool.output,
                                         "red" if item.tool.ok is False else "")
                    else:
                        child.add_leaf(Text("no output yet", style="bright_black"))
                elif item.text and "\n" in item.text.strip():
                    child = node.add(self._item_label(item), data=("item", turn.index, i), expand=False)
                    self._add_detail(child, "all of it", item.text, KIND_STYLE.get(item.kind, ""))
                else:
                    child = node.add_leaf(self._item_label(item), data=("item", turn.index, i))
                self._items[(turn.index, i)] = child
        if not transcript.turns:
            self.root.add_leaf(Text("no events yet: the agent has not started, or writes none", style="bright_black"))

    def reveal(self, turn_index: int, item_index: int) -> bool:
        """Open the turn, put the cursor on the item and scroll to it; False when it is not in the view."""
        node = self._items.get((turn_index, item_index))
        if node is None:
            return False
        self._turns[turn_index].expand()
        self.move_cursor(node)
        self.scroll_to_node(node)
        return True
