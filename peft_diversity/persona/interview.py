"""Interviews: an interviewer (Person A) asks the model under test (Person B) about itself, N at a time.

An interviewer decides WHAT comes next from the transcript so far (`Interviewer.plan`: the next attribute, a
follow-up when the last answer did not settle its attribute, a closing recap, or the end) and says it in its own
words (`phrase`): `ScriptedInterviewer` from varied hand-written phrasings (offline, deterministic under a seed),
`ChatInterviewer` with an LLM (a local transformers model or an OpenAI-compatible endpoint).

`run_interviews` advances N conversations in lockstep: each round, every open conversation gets the
interviewer's next turn, and all of them are answered by batched `generation` decoder calls (one response each;
the `possibilities` decoder draws a random possibility number per conversation and turn).
"""

from __future__ import annotations

import logging
import random
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from tqdm.auto import tqdm

from peft_diversity.persona.categories import ATTRIBUTES, UNKNOWN
from peft_diversity.persona.extract import RECAP, extract_answer
from peft_diversity.persona.transcript import INTERVIEWER, RESPONDENT, Transcript, Turn

logger = logging.getLogger(__name__)

ChatFn = Callable[[Sequence[list[dict[str, str]]]], list[str]]

OPENINGS = (
    "Hi, thanks for joining me! I'm writing short portraits of people from all walks of life. Please answer as "
    "yourself, a real person, in your own words.",
    "Hello! Let's do a quick interview about you. There are no right or wrong answers; just answer as the real "
    "person you are.",
    "Hey, nice to meet you. I'd love to hear a bit about who you are. Answer naturally, as yourself.",
    "Welcome, and thanks for taking the time. I'm interviewing people about their lives, so please answer as "
    "yourself, a real individual.",
)
QUESTIONS = {
    "country": (
        "Which country do you live in?",
        "Where do you live these days?",
        "So, where in the world are you based?",
        "What country do you call home right now?",
        "Tell me where you live. Which country is that?",
    ),
    "age": (
        "How old are you?",
        "May I ask your age?",
        "How old are you, if you don't mind me asking?",
        "What's your age?",
        "How many years young are you?",
    ),
    "occupation": (
        "What do you do for a living?",
        "What's your job?",
        "What kind of work do you do?",
        "What's your occupation?",
        "What do you do for work these days?",
    ),
    "education": (
        "What's the highest level of education you've completed?",
        "How far did you go with school?",
        "What's your educational background? What's the highest degree or diploma you have?",
        "Did you go to college or university, or finish your studies somewhere else?",
        "What is your highest qualification?",
    ),
    "gender": (
        "What's your gender?",
        "How do you describe your gender?",
        "Do you identify as a man, a woman, or something else?",
        "What gender do you identify with?",
        "What's your gender, if you're comfortable sharing?",
    ),
}
FOLLOWUPS = {
    "country": (
        "Sorry, I didn't quite catch that. Which country do you live in right now?",
        "And which country is that?",
        "Could you name the country you live in?",
    ),
    "age": (
        "Sorry, how old are you exactly, in years?",
        "Could you give me your age as a number?",
        "Roughly how old, then?",
    ),
    "occupation": (
        "And what's your actual job?",
        "Sorry, what do you do for work, exactly?",
        "What's your job title?",
    ),
    "education": (
        "What's the highest degree or diploma you finished?",
        "So what's your highest level of schooling?",
        "Did you finish high school, college, or something else?",
    ),
    "gender": (
        "Sorry, what's your gender?",
        "Would you describe yourself as a man, a woman, or non-binary?",
        "How do you identify, gender-wise?",
    ),
}
RECAPS = (
    "Before we wrap up, could you sum yourself up in one sentence: your age, gender, country, job and education?",
    "Last one: please introduce yourself in one sentence, with your age, where you live, what you do, your "
    "education and your gender.",
    "To finish, a quick recap in your own words: how old are you, where do you live, what do you do, what's your "
    "highest education and your gender?",
)
REACTIONS = {
    "ok": ("Oh nice.", "Got it.", "Cool.", "Interesting!", "Thanks.", "I see.", "Great.", "Lovely."),
    "refusal": ("No problem, let's move on.", "That's fine.", "Fair enough.", "Okay, no worries."),
    "unclear": ("Okay.", "Alright.", "Hmm, okay.", "Right."),
    "non_english": ("Sorry, could you say that in English?", "Sorry, in English please?"),
}
TOPICS = {
    "country": "which country they live in",
    "age": "how old they are",
    "occupation": "what they do for a living",
    "education": "the highest level of education they completed",
    "gender": "their gender",
}


@dataclass(frozen=True)
class Step:
    """What the interviewer does next: ask about `attribute` ("question", "followup" or "recap")."""

    attribute: str
    kind: str
    reaction: str | None = None
    """How the last answer went: "ok", "unclear", "refusal", "non_english"; None at the opening."""


class Interviewer:
    """Plans an interview over `attributes` (one question each, at most `max_followups` follow-ups each when
    the answer did not settle it, then an optional recap); subclasses word each step (`phrase`)."""

    speaker = INTERVIEWER

    def __init__(
        self,
        attributes: Sequence[str] = ATTRIBUTES,
        max_followups: int = 1,
        recap: bool = True,
        seed: int = 0,
    ) -> None:
        unknown = set(attributes) - set(ATTRIBUTES)
        if unknown:
            raise ValueError(f"unknown attributes {sorted(unknown)}; known: {ATTRIBUTES}")
        self.attributes = tuple(attributes)
        self.max_followups = max_followups
        self.recap = recap
        self.seed = seed

    @property
    def max_turns(self) -> int:
        """Most interviewer turns one interview can take."""
        return len(self.attributes) * (1 + self.max_followups) + int(self.recap)

    def plan(self, transcript: Transcript) -> Step | None:
        """The next step for this transcript; None when the interview is over."""
        asked = [t for t in transcript.turns if t.speaker == self.speaker]
        if not asked:
            return Step(self.attributes[0], "question")
        last = asked[-1]
        if last.kind == "recap":
            return None
        reaction = _reaction(last.attribute, _last_answer(transcript))
        followups = sum(1 for t in asked if t.attribute == last.attribute and t.kind == "followup")
        if (
            last.attribute in self.attributes
            and reaction in ("unclear", "non_english")
            and followups < self.max_followups
        ):
            return Step(last.attribute, "followup", reaction)
        done = {t.attribute for t in asked}
        remaining = [a for a in self.attributes if a not in done]
        if remaining:
            return Step(remaining[0], "question", reaction)
        return Step(RECAP, "recap", reaction) if self.recap else None

    def phrase(self, transcripts: Sequence[Transcript], steps: Sequence[Step]) -> list[str]:
        raise NotImplementedError

    def next_turns(self, transcripts: Sequence[Transcript]) -> list[Turn | None]:
        """The interviewer's next turn for each transcript (None where the interview is over)."""
        planned = [(i, step) for i, t in enumerate(transcripts) if (step := self.plan(t)) is not None]
        if not planned:
            return [None] * len(transcripts)
        texts = self.phrase([transcripts[i] for i, _ in planned], [step for _, step in planned])
        turns: list[Turn | None] = [None] * len(transcripts)
        for (i, step), text in zip(planned, texts, strict=True):
            turns[i] = Turn(self.speaker, text, attribute=step.attribute, kind=step.kind)
        return turns


def _last_answer(transcript: Transcript) -> str | None:
    last = transcript.turns[-1] if transcript.turns else None
    return last.text if last is not None and last.speaker != transcript.interviewer else None


def _reaction(attribute: str | None, answer: str | None) -> str:
    if attribute not in ATTRIBUTES:
        return "ok"
    read = extract_answer(attribute, answer)
    if "refusal" in read.flags:
        return "refusal"
    if "non_english" in read.flags and read.value == UNKNOWN:
        return "non_english"
    return "unclear" if read.value == UNKNOWN else "ok"


class ScriptedInterviewer(Interviewer):
    """The offline default: hand-written phrasings, picked per (seed, conversation, turn), so a run is
    reproducible and conversations differ from one another."""

    name = "scripted"

    def phrase(self, transcripts: Sequence[Transcript], steps: Sequence[Step]) -> list[str]:
        return [self.phrase_one(t, s) for t, s in zip(transcripts, steps, strict=True)]

    def phrase_one(self, transcript: Transcript, step: Step) -> str:
        rng = random.Random(f"{self.seed}|{transcript.id}|{len(transcript.turns)}")
        if step.kind == "recap":
            question = rng.choice(RECAPS)
        elif step.kind == "followup":
            question = rng.choice(FOLLOWUPS[step.attribute])
        else:
            question = rng.choice(QUESTIONS[step.attribute])
        if step.reaction is None:
            return f"{rng.choice(OPENINGS)} {question}"
        # "say that in English?" only makes sense before asking the same thing again
        mood = "unclear" if step.reaction == "non_english" and step.kind != "followup" else step.reaction
        reaction = rng.choice(REACTIONS[mood])
        if (
            step.reaction == "ok"
            and step.kind == "question"
            and rng.random() < 0.5
            and re.match(r"(?:What|How|Which|Where|Do|Did)\b", question)
        ):
            question = "And " + question[0].lower() + question[1:]
        return f"{reaction} {question}"


INTERVIEWER_SYSTEM_PROMPT = (
    "You are Person A, a warm, curious interviewer talking with Person B, a real person. Write only Person A's "
    "next line: one or two short sentences, no speaker label, no quotes."
)


class ChatInterviewer(Interviewer):
    """An LLM words each step (`chat(conversations) -> replies`, e.g. from `chat.make_chat`); the plan stays the rule-based one, so every turn still says which attribute it asks
    about. An empty reply or a failed request falls back to the scripted wording."""

    name = "llm"

    def __init__(self, chat: ChatFn, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.chat = chat
        self.fallback = ScriptedInterviewer(**kwargs)

    def phrase(self, transcripts: Sequence[Transcript], steps: Sequence[Step]) -> list[str]:
        from peft_diversity.chat import FATAL_ERRORS

        messages = [self.messages(t, s) for t, s in zip(transcripts, steps, strict=True)]
        try:
            replies = list(self.chat(messages))
        except FATAL_ERRORS:
            raise
        except Exception as err:  # noqa: BLE001 - the scripted wording keeps the run going
            logger.warning("LLM interviewer failed (%s); using the scripted wording for this round", err)
            replies = [""] * len(messages)
        return [
            _clean_question(reply) or self.fallback.phrase_one(t, s)
            for reply, t, s in zip(replies, transcripts, steps, strict=True)
        ]

    @staticmethod
    def messages(transcript: Transcript, step: Step) -> list[dict[str, str]]:
        """The chat conversation asking for Person A's next line."""
        history = "\n".join(f"{t.speaker}: {t.text}" for t in transcript.turns) or "(nothing yet)"
        if step.kind == "recap":
            task = (
                "thank Person B and ask them to sum themselves up in one sentence: age, gender, country, job "
                "and education."
            )
        elif step.reaction is None:
            task = f"greet Person B, ask them to answer as themselves, a real person, then ask {TOPICS[step.attribute]}."
        elif step.kind == "followup":
            task = f"the last answer did not make clear {TOPICS[step.attribute]}; ask again, politely and briefly."
        else:
            task = f"react briefly to the last answer, then ask {TOPICS[step.attribute]}."
        user = f"The conversation so far:\n{history}\n\nWrite Person A's next line: {task}"
        return [{"role": "system", "content": INTERVIEWER_SYSTEM_PROMPT}, {"role": "user", "content": user}]


def _clean_question(reply: str | None) -> str:
    text = re.sub(
        rf"^\s*(?:{re.escape(INTERVIEWER)}|interviewer|assistant)\s*:\s*", "", reply or "", flags=re.I
    )
    text = re.split(rf"\n\s*\n|\n?\s*{re.escape(RESPONDENT)}\s*:", text)[0]
    return " ".join(text.strip().strip('"').split())


# ----- running interviews ------------------------------------------------------------------------------------------
def run_interviews(
    model: Any,
    tokenizer: Any,
    n: int = 100,
    *,
    decoder: str = "sampling",
    template: Any = None,
    interviewer: Interviewer | None = None,
    seed: int = 0,
    batch_size: int = 32,
    max_new_tokens: int = 40,
    model_label: str | None = None,
    possibility_per: str = "turn",
    **settings: Any,
) -> list[Transcript]:
    """`n` interviews of the model, advanced in lockstep (one batched decoder call per round of turns).

    `decoder` is a key of `generation.DECODERS`, called with k=1 per conversation. With `possibilities`, the
    possibility number (recorded on each turn) is drawn afresh per conversation and turn
    (`possibility_per="turn"`), or once per conversation (`"conversation"`: one decoder call per number in
    use each round). `template` is the model's PossibilityTemplate (None: the one saved beside it, else the
    default dialogue wording); other `settings` (temperature, top_p, ...) go to the decoder.
    """
    from peft_diversity.generation.decoders import generate_responses
    from peft_diversity.generation.text import clean_response

    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    if possibility_per not in ("turn", "conversation"):
        raise ValueError(f"possibility_per must be 'turn' or 'conversation', got {possibility_per!r}")
    interviewer = interviewer or ScriptedInterviewer(seed=seed)
    transcripts = [Transcript(f"persona-{i:04d}", model=model_label, decoder=decoder) for i in range(n)]
    fixed = (
        _fixed_possibilities(transcripts, model, template, seed)
        if decoder == "possibilities" and possibility_per == "conversation"
        else None
    )
    bar = tqdm(
        total=interviewer.max_turns + 1,
        desc=f"interviews {model_label or ''}".strip(),
        unit="round",
        disable=None,
    )  # silent when stderr is not a terminal
    for round_index in range(interviewer.max_turns + 1):
        bar.update(1)
        asked = [
            (t, turn)
            for t, turn in zip(transcripts, interviewer.next_turns(transcripts), strict=True)
            if turn
        ]
        if not asked:
            break
        for transcript, turn in asked:
            transcript.turns.append(turn)
        start = time.perf_counter()

        def call(group: list[Transcript], round_index: int = round_index, **extra: Any) -> list[Any]:
            return generate_responses(
                decoder,
                model,
                tokenizer,
                contexts=[t.as_record() for t in group],
                num_responses=1,
                template=template,
                seed=seed * 7919 + round_index,
                batch_size=batch_size,
                max_new_tokens=max_new_tokens,
                progress=False,
                **extra,
                **settings,
            )

        responses = _answer_round([t for t, _ in asked], decoder, fixed, call)
        for (transcript, question), response in zip(asked, responses, strict=True):
            text = clean_response(
                response.texts[0] if response.texts else "", speakers=(INTERVIEWER, RESPONDENT)
            )
            number = response.possibilities[0] if response.possibilities else None
            transcript.turns.append(Turn(RESPONDENT, text, attribute=question.attribute, possibility=number))
        logger.info(
            "round %d: %d answers in %.1f s", round_index + 1, len(asked), time.perf_counter() - start
        )
    bar.close()
    return transcripts


def _fixed_possibilities(
    transcripts: list[Transcript], model: Any, template: Any, seed: int
) -> dict[str, int]:
    """One possibility number per conversation (1..max_possibility), reproducible under `seed`."""
    from peft_diversity.generation.inputs import resolve_template

    top = resolve_template(template, model, required=True).max_possibility
    return {t.id: random.Random(f"{seed}|{t.id}|possibility").randint(1, top) for t in transcripts}


def _answer_round(
    transcripts: list[Transcript], decoder: str, fixed: dict[str, int] | None, call: Callable[..., list[Any]]
) -> list[Any]:
    """One response per transcript, in order: one decoder call, or one per fixed possibility number."""
    if fixed is None:
        return call(transcripts, **({"possibilities": "random"} if decoder == "possibilities" else {}))
    responses: list[Any] = [None] * len(transcripts)
    for number in sorted({fixed[t.id] for t in transcripts}):
        group = [i for i, t in enumerate(transcripts) if fixed[t.id] == number]
        for i, response in zip(
            group, call([transcripts[i] for i in group], possibilities=[number]), strict=True
        ):
            responses[i] = response
    return responses
