"""
Small self-contained modals: confirm, add a shipment, pick a loop, help.
Their CSS lives with them (STYLE.md §6: DEFAULT_CSS for self-contained widgets).
"""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from shiptrackd.wire.answers import LoopInfo

MODAL_CSS = """
{name} {{ align: center middle; }}
{name} > Vertical {{
    width: 72; max-width: 95%; height: auto; max-height: 90%;
    border: thick $primary; background: $surface; padding: 1 2;
}}
{name} .modal-title {{ text-style: bold; margin-bottom: 1; }}
{name} .modal-buttons {{ height: auto; align-horizontal: right; margin-top: 1; }}
{name} .modal-buttons Button {{ margin-left: 2; }}
"""


class ConfirmModal(ModalScreen[bool]):
    """Yes or no before something that costs API calls or notifies people."""

    DEFAULT_CSS = MODAL_CSS.format(name="ConfirmModal")
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
    ]

    def __init__(self, title: str, body: str, *, confirm: str = "Yes") -> None:
        super().__init__()
        self.title_text = title
        self.body = body
        self.confirm = confirm

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.title_text, classes="modal-title")
            yield Static(self.body)
            with Horizontal(classes="modal-buttons"):
                yield Button("No (n)", id="no")
                yield Button(f"{self.confirm} (y)", id="yes", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#yes", Button).focus()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class AddShipmentModal(ModalScreen[dict[str, str] | None]):
    """Carrier, tracking number and an optional reference; the daemon validates them too."""

    DEFAULT_CSS = (
        MODAL_CSS.format(name="AddShipmentModal")
        + """
    AddShipmentModal Input { margin-bottom: 1; }
    AddShipmentModal #add-error { color: $error; height: auto; }
    """
    )
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Add a shipment", classes="modal-title")
            yield Input(placeholder="carrier code, e.g. ups, fedex, usps", id="carrier")
            yield Input(placeholder="tracking number", id="tracking")
            yield Input(placeholder="reference (optional)", id="reference")
            yield Static("", id="add-error")
            with Horizontal(classes="modal-buttons"):
                yield Button("Cancel (esc)", id="cancel")
                yield Button("Add", id="add", variant="primary")

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "reference" or (event.input.id == "tracking" and event.value):
            self._add()
        else:
            self.focus_next()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "add":
            self._add()
        else:
            self.dismiss(None)

    def _add(self) -> None:
        carrier = self.query_one("#carrier", Input).value.strip().lower()
        tracking = self.query_one("#tracking", Input).value.strip()
        reference = self.query_one("#reference", Input).value.strip()
        if not carrier or not tracking:
            self.query_one("#add-error", Static).update("carrier and tracking number are required")
            return
        self.dismiss({"carrier_code": carrier, "tracking_number": tracking, "reference": reference})

    def action_cancel(self) -> None:
        self.dismiss(None)


class LoopPickerModal(ModalScreen[tuple[str, str] | None]):
    """Choose a loop to pause or resume; Enter toggles the highlighted one."""

    DEFAULT_CSS = MODAL_CSS.format(name="LoopPickerModal") + "LoopPickerModal OptionList { height: auto; }"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, loops: dict[str, LoopInfo]) -> None:
        super().__init__()
        self.loops = loops

    def compose(self) -> ComposeResult:
        options = []
        for name, loop in self.loops.items():
            paused = loop.paused
            verb = "resume" if paused else "pause"
            prompt = Content.assemble(
                (f"{verb:<7}", "bold"), f"{name:<8}", (f"({'paused' if paused else 'running'})", "$text-muted")
            )
            options.append(Option(prompt, id=f"{name}:{verb}"))
        with Vertical():
            yield Label("Pause or resume a loop", classes="modal-title")
            yield OptionList(*options, id="loop-options")

    def on_mount(self) -> None:
        options = self.query_one(OptionList)
        options.highlighted = 0
        options.focus()

    @on(OptionList.OptionSelected)
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        name, _, action = str(event.option.id).partition(":")
        self.dismiss((name, action))

    def action_cancel(self) -> None:
        self.dismiss(None)


HELP = """\
[b]Screens[/b]
  [b]1[/b] dashboard · [b]2[/b] shipments · [b]3[/b] events · [b]4[/b] deliveries · [b]?[/b] this help
  [b]ctrl+p[/b] command palette

[b]Actions[/b] (everywhere; each asks first when it costs API calls or notifies people)
  [b]r[/b] sync now: the shipments that are due
  [b]f[/b] force sync: every active shipment
  [b]h[/b] run the health checks now
  [b]t[/b] send a test alert to every channel
  [b]p[/b] pause or resume a loop
  [b]a[/b] add a shipment
  [b]f2[/b] switch between the dark and light theme · [b]q[/b] quit

[b]Shipments[/b]
  [b]/[/b] search by id, tracking number or reference · [b]c[/b] clear the filters
  [b]↑ ↓ PgUp PgDn Home End[/b] move · [b]enter[/b] open · [b]space[/b] select · [b]y[/b] sync the selected
  (or the highlighted one) · [b]ctrl+r[/b] reload

[b]Shipment detail[/b]
  [b]y[/b] sync this shipment · [b]ctrl+r[/b] reload · [b]esc[/b] back

[b]Deliveries[/b] (webhooks to the application's endpoints)
  [b]e[/b] or [b]enter[/b] only the highlighted endpoint's deliveries (again: all) · on a delivery,
  [b]enter[/b] opens its shipment
  [b]d[/b] dead letters only · [b]c[/b] clear the filters · [b]ctrl+r[/b] reload · [b]tab[/b] other table

[b]When the daemon goes away[/b]
  A banner says so, the last known state stays on screen, and the console reconnects
  by itself (with back-off) and catches up on the events it missed.
"""


class HelpModal(ModalScreen[None]):
    DEFAULT_CSS = MODAL_CSS.format(name="HelpModal") + "HelpModal > Vertical { width: 96; }"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q,question_mark,f1", "close", "Close")]

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("shiptrack-tui — keys", classes="modal-title")
            with VerticalScroll():
                yield Static(Content.from_markup(HELP))

    def action_close(self) -> None:
        self.dismiss(None)
