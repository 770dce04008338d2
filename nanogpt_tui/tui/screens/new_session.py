"""The new-session form: agent, strategy, anchor record, budget, GPUs, host and backend, checked before launch."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Select, Static

from nanogpt_tui.errors import UserError
from nanogpt_tui.fields import MAX_GPU_HOURS, MAX_GPUS, BadField, number_from_text
from nanogpt_tui.backends import BACKEND_KINDS
from nanogpt_tui.sessions.manager import LaunchRequest, resolve_sandbox

@dataclass(frozen=True)
class Place:
    """A place the form offers (the host / partition choice): its label, and the host or partition the launch asks
    for, None where the backend chooses."""

    label: str
    host: str | None = None

    @classmethod
    def named(cls, name: str) -> Place:
        return cls(name, name)


# The places that leave it to the backend: the pool places a Docker session by free GPUs, Slurm submits to the
# cluster's default partition, a local session runs on this machine.
AUTO_HOST = Place("any (by free GPUs)")
DEFAULT_PARTITION = Place("the default partition")
THIS_MACHINE = Place("this machine")


@dataclass(frozen=True)
class FormChoices:
    """What the form offers, gathered off the UI thread (the anchors: every record with code, present or fetchable)."""

    agents: list[str]
    strategies: list[str]
    anchors: list[str]
    # Where each backend may run a session, first the backend's own choice: Docker hosts of the pool, Slurm
    # partitions, this machine.
    places: dict[str, list[Place]]
    default_agent: str
    default_strategy: str
    default_anchor: str
    default_budget: float
    default_gpus: int
    default_backend: str = "docker"


def _select(options: list[str], value: str, id: str) -> Select:
    value = value if value in options else (options[0] if options else Select.BLANK)
    return Select([(o, o) for o in options], value=value, allow_blank=not options, id=id)


def _places_select(places: list[Place]) -> Select:
    return Select([(p.label, p) for p in places], value=places[0], allow_blank=False, id="host")


class NewSessionScreen(ModalScreen[LaunchRequest | None]):
    BINDINGS = [Binding("escape", "cancel", "cancel"), Binding("ctrl+s", "launch", "launch")]

    def __init__(self, choices: FormChoices) -> None:
        super().__init__()
        self.choices = choices

    def compose(self) -> ComposeResult:
        c = self.choices
        with Vertical(classes="dialog form"):
            yield Static(Text("New session", style="bold"), classes="dialog-title")
            with VerticalScroll():
                for label, widget in (
                    ("agent", _select(c.agents, c.default_agent, "agent")),
                    ("strategy", _select(c.strategies, c.default_strategy, "strategy")),
                    ("anchor record", _select(c.anchors, c.default_anchor, "anchor")),
                    ("budget GPU-hours", Input(f"{c.default_budget:g}", id="budget")),
                    ("GPUs", Input(str(c.default_gpus), id="gpus")),
                    ("backend", _select(list(BACKEND_KINDS), c.default_backend, "backend")),
                    ("host / partition", _places_select(self._places(c.default_backend))),
                    ("sandbox", _select(["on", "off"], "on", "sandbox")),
                ):
                    with Horizontal(classes="field"):
                        yield Label(label)
                        yield widget
            yield Static("", id="error", classes="dialog-error")
            with Horizontal(classes="buttons"):
                yield Button("Launch (ctrl+s)", variant="primary", id="launch")
                yield Button("Cancel (esc)", id="cancel")

    def on_mount(self) -> None:
        self.query_one("#agent", Select).focus()

    def _places(self, backend: str | None) -> list[Place]:
        return list(self.choices.places.get(backend or "", [])) or [AUTO_HOST]

    def on_select_changed(self, event: Select.Changed) -> None:
        """The places follow the backend (a Slurm session goes to a partition, not a Docker host)."""
        if event.select.id != "backend":
            return
        host = self.query_one("#host", Select)
        places = self._places(None if event.value is Select.BLANK else str(event.value))
        current = host.value
        host.set_options([(p.label, p) for p in places])
        host.value = current if current in places else places[0]

    def _fail(self, text: str) -> None:
        self.query_one("#error", Static).update(Text(text))

    def _value(self, id: str) -> str | None:
        value = self.query_one(f"#{id}", Select).value
        return None if value is Select.BLANK else str(value)

    def build_request(self) -> LaunchRequest | None:
        agent, strategy, anchor = self._value("agent"), self._value("strategy"), self._value("anchor")
        backend = self._value("backend") or "docker"
        place = self.query_one("#host", Select).value
        if not agent or not strategy or not anchor:
            self._fail("Choose an agent, a strategy and an anchor record (a timeline record's code is fetched at "
                       "launch; `nanogpt-tui records fetch NAME` does it beforehand).")
            return None
        try:
            budget = number_from_text(self.query_one("#budget", Input).value, "budget", positive=True,
                                      maximum=MAX_GPU_HOURS)
        except BadField as err:
            self._fail(f"The {err}; type GPU-hours such as 512 or 0.05.")
            return None
        try:
            gpus = number_from_text(self.query_one("#gpus", Input).value, "GPUs", integer=True, minimum=1,
                                    maximum=MAX_GPUS)
        except BadField as err:
            self._fail(f"The {err}; a session needs at least one GPU (the budget counts GPU-hours).")
            return None
        sandbox = self._value("sandbox") or "on"
        if backend == "local" and sandbox == "on":
            sandbox = None  # the local backend has none: fine for the scripted agents, refused for a real one
        # A place the form offers under another backend is not sent: the backend then chooses.
        host = place.host if isinstance(place, Place) and place in self._places(backend) else None
        from nanogpt_tui.agents.catalog import get_agent

        try:
            resolve_sandbox(get_agent(agent), backend, sandbox)
        except UserError as err:
            self._fail(str(err))
            return None
        return LaunchRequest(agent=agent, strategy=strategy, anchor=anchor, budget_gpu_hours=budget, gpus=gpus,
                             backend=backend, host=host, sandbox=sandbox)

    def action_launch(self) -> None:
        request = self.build_request()
        if request is not None:
            self.dismiss(request)

    def action_cancel(self) -> None:
        self.dismiss(None)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "launch":
            self.action_launch()
        else:
            self.action_cancel()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_launch()
