"""The task registry: 9 single tasks, 14 compositions (primary + secondary) and their prompts.

A composition T_C(x) = T_2(T_1(x)) applies a secondary task (translate, change tone) to the
output of a primary one (summarise a dialogue, suggest a reply) in one generation pass.
"""

from __future__ import annotations

from dataclasses import dataclass

from .errors import MlxLcError


@dataclass(frozen=True)
class Task:
    name: str
    kind: str  # "primary" or "secondary"
    instruction: str  # the single-task prompt
    modifier: str = ""  # secondary only: appended to a primary instruction when composed
    family: str = ""  # "trans" or "tone" for secondaries; metric name for primaries
    metric: str = "rougeL"


@dataclass(frozen=True)
class Composition:
    primary: Task
    secondary: Task

    @property
    def name(self) -> str:
        return f"{self.primary.name}+{self.secondary.name}"

    @property
    def kind(self) -> str:
        return "composition"

    @property
    def instruction(self) -> str:
        return f"{self.primary.instruction.rstrip('.')}{self.secondary.modifier}."

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
    f"{p}+{s}": Composition(PRIMARY[p], SECONDARY[s]) for p in PRIMARY for s in SECONDARY
}
GROUPS = ("sum+trans", "sum+tone", "reply+trans", "reply+tone")


def get(name: str) -> Task | Composition:
    if name in SINGLE:
        return SINGLE[name]
    if name in COMPOSITIONS:
        return COMPOSITIONS[name]
    raise MlxLcError(f"unknown task {name!r}; single tasks: {', '.join(SINGLE)}; "
                     f"compositions are primary+secondary, e.g. summarize+es")


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
