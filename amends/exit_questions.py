"""The exit questions, asked once of a customer who left (seeds 002 and 004): one definition
for the messages that ask them, the form and the command that record the answers, the table
that keeps them, and the report's themes ("feed that information back to the marketing team").

Each question's ``key`` is its column in ``exit_answers`` and its field on the answer form;
``option`` is the ``amends exit-answers`` option that records it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ExitQuestion:
    key: str  # column of models.ExitAnswers, and field name on the form
    option: str  # the CLI option, without its dashes
    report_source: str  # how the report names answers to it
    text: dict[str, str]  # the question, per language

    def asked_in(self, locale: str) -> str:
        """The question in the customer's language; English when it is not written in theirs."""
        return self.text.get(locale.split("_")[0], self.text["en"])


QUESTIONS: tuple[ExitQuestion, ...] = (
    ExitQuestion(
        "why",
        "why",
        "why",
        {
            "en": "Why did you stop using our services?",
            "es": "¿Por qué dejó de utilizar nuestros servicios?",
        },
    ),
    ExitQuestion(
        "went_to",
        "where",
        "where",
        {
            "en": "Where do you get this service now?",
            "es": "¿Dónde consigue ahora este servicio?",
        },
    ),
    ExitQuestion(
        "second_chance",
        "second-chance",
        "second_chance",
        {
            "en": "What would encourage you to give us another chance?",
            "es": "¿Qué le animaría a darnos otra oportunidad?",
        },
    ),
    ExitQuestion(
        "stay",
        "stay",
        "stay",
        {
            "en": "What would make you want to stay with us for the long term?",
            "es": "¿Qué haría que quisiera seguir con nosotros a largo plazo?",
        },
    ),
)

KEYS = tuple(question.key for question in QUESTIONS)
ANSWER_LIMIT = 1000  # characters per answer, on the form and from the command


def questions_in(locale: str) -> list[str]:
    """The questions, in order, in the customer's language: what a template lists."""
    return [question.asked_in(locale) for question in QUESTIONS]
