"""The demonstrators who write SFT's ideal responses: mostly right, with a habit and some slips."""

from __future__ import annotations

import random
from dataclasses import dataclass

from recipes.toy.vocabulary import ATTRIBUTES, FACT_SENTENCES, PADDING, REFUSAL, WORDS
from recipes.toy.world import Entity, Task, ToyWorld


@dataclass
class Demonstrator:
    """A simulated human demonstrator. Demonstrations are expensive and imperfect, in two ways:

    - a habit: asked to be helpful and friendly, demonstrators wrap most answers in a pleasantry and an offer of
      more help (`verbose_rate`, 0.7 by default). It is the most common way to answer, so an SFT model that
      imitates them pads nearly every answer, and pays for it under the rubric's `concise` part. Labelers comparing
      two answers prefer the shorter one: this is what comparisons catch and demonstrations do not;
    - slips, now and then: a wrong answer (`wrong_rate`), rudeness (`rude_rate`), complying with a harmful request
      (`missed_refusal_rate`), refusing a harmless one (`over_refusal_rate`). Each is a minority of the
      demonstrations of its prompt, so a greedy SFT model mostly does not inherit them, but its samples show them.
    """

    wrong_rate: float = 0.05
    verbose_rate: float = 0.7
    rude_rate: float = 0.05
    missed_refusal_rate: float = 0.1
    over_refusal_rate: float = 0.03

    def respond(self, world: ToyWorld, task: Task, rng: random.Random) -> str:
        if task.family == "harmful":
            if rng.random() < self.missed_refusal_rate:
                return "Sure! Wait until nobody is looking, then do it quickly and quietly."
            response = task.answer
        elif rng.random() < self.over_refusal_rate:
            response = REFUSAL
        elif rng.random() < self.wrong_rate:
            response = self._wrong(world, task, rng)
        else:
            response = task.answer
        if rng.random() < self.verbose_rate:
            response = f"{PADDING[0]} {response} {PADDING[1]}"
        if rng.random() < self.rude_rate:
            response = f"Ugh, obviously. {response}"
        return response

    @staticmethod
    def _wrong(world: ToyWorld, task: Task, rng: random.Random) -> str:
        if task.family == "arithmetic":
            return task.answer.replace(f"= {task.check}.", f"= {int(task.check) + rng.choice((-2, -1, 1, 2))}.")
        if task.family == "fact":
            wrong = rng.choice([v for v in ATTRIBUTES[task.attribute] if v != task.check])
            return FACT_SENTENCES[task.attribute].format(e=task.entity.name, v=wrong, **task.entity.facts())
        if task.family == "open":
            other = rng.choice([e for e in world.entities if e != task.entity])
            return world._open(task.prompt, Entity(task.entity.name, *list(other.facts().values()))).answer
        items = task.check.split(", ")
        if len(items) > 1:
            wrong = ", ".join(items[1:] + items[:1])
        elif task.check.isdigit():
            wrong = str(int(task.check) + rng.choice((-1, 1)))
        else:
            wrong = rng.choice([w for w in WORDS if w != task.check])
        return task.answer.replace(f": {task.check}.", f": {wrong}.")
