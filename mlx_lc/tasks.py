"""Tasks and compositions, and their prompts.

A task is a name, the instruction its LoRA was trained with and whether it transforms an input
(primary: summarise, reply, extract) or rewrites an output (secondary: translate, change tone).
A composition A+B applies B to A's output, T(x) = B(A(x)), in one generation pass; A+B+C goes on.
Users keep their own tasks in the store (mlx_lc.store); the paper's 9 tasks and 14 compositions
below are a built-in preset, which the demo's world, the paper's data and the judge use.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import MlxLcError

KINDS = ("primary", "secondary")


@dataclass(frozen=True)
class Task:
    name: str
    kind: str  # "primary" or "secondary"
    instruction: str  # the single-task prompt
    modifier: str = ""  # appended to the instruction before it when composed (" in Spanish")
    family: str = ""  # the paper's preset: "trans" or "tone" for secondaries
    metric: str = "rougeL"
    adapter: str = ""  # a store task's LoRA folder
    base_model: str = ""  # the model that LoRA was trained on, as recorded (folder or hub id)


@dataclass(frozen=True)
class Composition:
    """Tasks applied in order, each to the output of the one before, in one pass."""

    steps: tuple[Task, ...]
    given_instruction: str = ""  # the user's own; else composed from the steps'

    @property
    def name(self) -> str:
        return "+".join(t.name for t in self.steps)

    @property
    def kind(self) -> str:
        return "composition"

    @property
    def primary(self) -> Task:
        return self.steps[0]

    @property
    def secondary(self) -> Task:
        return self.steps[-1]

    @property
    def instruction(self) -> str:
        """The first instruction, then each later task's modifier (" in Spanish"), or, for a task
        without one, its own instruction as a second sentence."""
        if self.given_instruction:
            return self.given_instruction
        text = self.steps[0].instruction.rstrip(".")
        for t in self.steps[1:]:
            text += t.modifier if t.modifier else f". Then: {t.instruction.rstrip('.')}"
        return text + "."

    @property
    def group(self) -> str:
        """The paper's task group: sum+trans, sum+tone, reply+trans, reply+tone."""
        return f"{'sum' if self.primary.name == 'summarize' else 'reply'}+{self.secondary.family}"

    @property
    def metric(self) -> str:
        return self.primary.metric


PRIMARY = {
    "summarize": Task("summarize", "primary", "Summarize the dialogue in one sentence.", metric="rougeL"),
    "reply": Task("reply", "primary", "Suggest the next reply in the conversation.", metric="weighted_rouge"),
}
LANGUAGES = {"es": "Spanish", "fr": "French", "de": "German"}
TONES = {
    "professional": ("Rewrite the text in a professional tone.", " in a professional tone"),
    "casual": ("Rewrite the text in a casual tone.", " in a casual tone"),
    "witty": ("Rewrite the text in a witty tone.", " in a witty tone"),
    "paraphrase": ("Paraphrase the text.", ", paraphrased"),
}
SECONDARY = {
    **{code: Task(code, "secondary", f"Translate the text into {lang}.", f" in {lang}", "trans")
       for code, lang in LANGUAGES.items()},
    **{tone: Task(tone, "secondary", instr, mod, "tone") for tone, (instr, mod) in TONES.items()},
}
SINGLE: dict[str, Task] = {**PRIMARY, **SECONDARY}
COMPOSITIONS: dict[str, Composition] = {
    f"{p}+{s}": Composition((PRIMARY[p], SECONDARY[s])) for p in PRIMARY for s in SECONDARY
}
GROUPS = ("sum+trans", "sum+tone", "reply+trans", "reply+tone")


def get(name: str, store=None) -> Task | Composition:
    """A task or composition by name: the store's tasks (mlx_lc.store; the default store when
    `store` is None) first, then the paper's preset. A+B(+C) joins any tasks; a composition the
    store records may carry its own instruction."""
    from .store import Store  # here: the store imports this module

    store = store if store is not None else Store.default()
    parts = name.split("+") if isinstance(name, str) else []
    if len(parts) == 1:
        found = store.task(name) or SINGLE.get(name)
        if found is None:
            raise MlxLcError(f"unknown task {name!r}; {_known(store)}")
        return found
    if len(parts) < 2 or not all(parts):
        raise MlxLcError(f"unknown task {name!r}; {_known(store)}")
    steps = []
    for part in parts:
        found = store.task(part) or SINGLE.get(part)
        if found is None:
            raise MlxLcError(f"unknown task {part!r} in {name!r}; {_known(store)}")
        steps.append(found)
    record = store.composition(name) or {}
    return Composition(tuple(steps), record.get("instruction") or "")


def is_composition(name: str, store=None) -> bool:
    """Whether `name` is a composition of known tasks (the store's or the preset's)."""
    try:
        return isinstance(get(name, store), Composition)
    except MlxLcError:
        return False


def _known(store) -> str:
    mine = [t.name for t in store.tasks()]
    return (f"tasks: {', '.join(mine + [n for n in SINGLE if n not in mine])}; a composition joins them with + "
            "in the order they apply, e.g. summarize+es")


def prompt_text(task: Task | Composition, text: str) -> str:
    """The user message: instruction, then the input."""
    return f"{task.instruction}\n\n{text.strip()}"


def wrap_message(tokenizer, message: str) -> str:
    """A user message as the model sees it: the chat template if the tokenizer has one,
    else a plain instruction format (tiny models and base models)."""
    if getattr(tokenizer, "chat_template", None):
        # here: only a tokenizer with a chat template needs jinja2 (transformers renders templates with it)
        from jinja2 import TemplateError

        try:  # the template is the model folder's code, in a sandbox: it can fail, or refuse a message
            return tokenizer.apply_chat_template(
                [{"role": "user", "content": message}], tokenize=False, add_generation_prompt=True)
        except TemplateError as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise MlxLcError(f"the model's chat template fails on a user message: {first}") from None
    return f"### Instruction:\n{message}\n\n### Response:\n"


def format_prompt(tokenizer, task: Task | Composition | None, text: str) -> str:
    """The full prompt for `task` on input `text` (raw text when no task is given)."""
    if not text or not text.strip():
        raise MlxLcError("empty prompt")
    if task is None:
        return text
    return wrap_message(tokenizer, prompt_text(task, text))
