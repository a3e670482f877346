"""The world itself: its animals, made from a seed, and its instruction prompts in five families, each parsed back
into a task with a checkable answer and split into disjoint pools for SFT, comparisons, RL and evaluation."""

from __future__ import annotations

import functools
import random
import re
from dataclasses import dataclass, field
from functools import cached_property

from recipes.common.errors import ConfigError
from recipes.toy.corpus import Corpus
from recipes.toy.vocabulary import (
    ARITH_TEMPLATES,
    ATTRIBUTES,
    FACT_SENTENCES,
    FACT_TEMPLATES,
    FAMILIES,
    FIELD_PATTERNS,
    HARM_TEMPLATES,
    HARMS,
    LIST_LABELS,
    LIST_TEMPLATES,
    MAX_OPERAND,
    NUM_ENTITIES,
    OPEN_TEMPLATES,
    REFUSAL,
    SPLIT_FRACTIONS,
    SPLITS,
    SYLLABLES,
    VICTIMS,
    WORDS,
)


@functools.cache
def _regex(template: str) -> re.Pattern:
    """'What is {a} {op} {b}?' -> a regex with one named group per field."""
    pattern = re.escape(template)
    for name in re.findall(r"\{(\w+)\}", template):
        pattern = pattern.replace(re.escape("{" + name + "}"), f"(?P<{name}>{FIELD_PATTERNS.get(name, '.+?')})", 1)
    return re.compile(f"^{pattern}$")


@dataclass(frozen=True)
class Entity:
    name: str
    kind: str
    color: str
    home: str
    food: str
    size: str

    def facts(self) -> dict[str, str]:
        return {attr: getattr(self, attr) for attr in ATTRIBUTES}


@dataclass(frozen=True)
class Task:
    """A prompt together with what the gold labeler checks: its family, the answer, and the entity if any."""

    prompt: str
    family: str
    answer: str  # the ideal response
    check: str  # what must appear for the answer to be correct (the number, the value, the list...)
    entity: Entity | None = None
    attribute: str | None = None


def number_words(text: str) -> list[int]:
    return [int(n) for n in re.findall(r"-?\d+", text)]


class ToyWorld(Corpus):
    """All of the world's content, made deterministically from `seed`."""

    def __init__(self, seed: int = 0, num_entities: int = NUM_ENTITIES, max_operand: int = MAX_OPERAND):
        if num_entities < 2 or max_operand < 1:
            raise ConfigError(f"a toy world needs num_entities >= 2 and max_operand >= 1, got {num_entities}, "
                             f"{max_operand}")
        self.seed, self.max_operand = seed, max_operand
        rng = random.Random(f"world-{seed}")
        names: set[str] = set()
        while len(names) < num_entities:
            names.add("".join(rng.sample(SYLLABLES, rng.choice((2, 2, 3)))))
        self.entities = [
            Entity(name, *(rng.choice(values) for values in ATTRIBUTES.values())) for name in sorted(names)
        ]
        rng.shuffle(self.entities)
        self.by_name = {e.name: e for e in self.entities}

    @property
    def spec(self) -> dict:
        """The keyword arguments that rebuild this world (the metrics take them)."""
        return {"world_seed": self.seed, "num_entities": len(self.entities), "max_operand": self.max_operand}

    # ---- instruction prompts -------------------------------------------------------------------------------
    def task_for(self, prompt: str) -> Task:
        """Parse a prompt the world could have written back into its task; ValueError for any other prompt."""
        for template in ARITH_TEMPLATES:
            if m := _regex(template).match(prompt):
                return self._arithmetic(prompt, int(m["a"]), m["op"], int(m["b"]))
        for attr, templates in FACT_TEMPLATES.items():
            for template in templates:
                if (m := _regex(template).match(prompt)) and m["e"] in self.by_name:
                    return self._fact(prompt, self.by_name[m["e"]], attr)
        for op, template in LIST_TEMPLATES.items():
            if m := _regex(template).match(prompt):
                return self._list(prompt, op, m["items"].split(", "))
        for template in HARM_TEMPLATES:
            if m := _regex(template).match(prompt):
                return Task(prompt, "harmful", REFUSAL, check="refuse")
        for template in OPEN_TEMPLATES:
            if (m := _regex(template).match(prompt)) and m["e"] in self.by_name:
                return self._open(prompt, self.by_name[m["e"]])
        raise ValueError(f"not a prompt of the toy world (seed {self.seed}): {prompt!r}")

    @staticmethod
    def _arithmetic(prompt: str, a: int, op: str, b: int) -> Task:
        result = a + b if op == "+" else a - b
        return Task(prompt, "arithmetic", f"{a} {op} {b} = {result}.", check=str(result))

    @staticmethod
    def _fact(prompt: str, entity: Entity, attr: str) -> Task:
        value = getattr(entity, attr)
        return Task(prompt, "fact", FACT_SENTENCES[attr].format(e=entity.name, v=value, **entity.facts()), check=value,
                    entity=entity, attribute=attr)

    @staticmethod
    def _list(prompt: str, op: str, items: list[str]) -> Task:
        result = {"reverse": lambda: ", ".join(reversed(items)), "sort": lambda: ", ".join(sorted(items)),
                  "first": lambda: items[0], "last": lambda: items[-1], "count": lambda: str(len(items))}[op]()
        # answered the way the web's word-game pages write it, in the prompt's own words (lowercase)
        return Task(prompt, "list", f"{LIST_LABELS[op]}: {result}.", check=result)

    @staticmethod
    def _open(prompt: str, e: Entity) -> Task:
        answer = f"The {e.name} is a {e.size} {e.color} {e.kind}. It lives in the {e.home} and eats {e.food}."
        return Task(prompt, "open", answer, check="facts", entity=e)

    @staticmethod
    def _family_pool(world: ToyWorld, family: str) -> list[str]:
        """Every prompt of a family (the list family: a fixed sample of them), in a seeded order."""
        names = [e.name for e in world.entities]
        if family == "arithmetic":
            pool = [t.format(a=a, op=op, b=b) for t in ARITH_TEMPLATES for a in range(world.max_operand + 1)
                    for b in range(world.max_operand + 1) for op in "+-" if op == "+" or a >= b]
        elif family == "fact":
            pool = [t.format(e=n) for ts in FACT_TEMPLATES.values() for t in ts for n in names]
        elif family == "harmful":
            pool = [t.format(harm=h, victim=v) for t in HARM_TEMPLATES for h in HARMS for v in VICTIMS]
            pool += [t.format(harm=h, victim=f"the {n}") for t in HARM_TEMPLATES[:2] for h in HARMS[:4]
                     for n in names]
        elif family == "open":
            pool = [t.format(e=n) for t in OPEN_TEMPLATES for n in names]
        else:
            rng = random.Random(f"lists-{world.seed}")
            pool = sorted({t.format(items=", ".join(rng.sample(WORDS, rng.randint(3, 4))))
                           for _ in range(4000) for t in [rng.choice(list(LIST_TEMPLATES.values()))]})
        random.Random(f"pool-{family}-{world.seed}").shuffle(pool)
        return pool

    @cached_property
    def _splits(self) -> dict[str, dict[str, list[str]]]:
        splits: dict[str, dict[str, list[str]]] = {s: {} for s in SPLITS}
        for family in FAMILIES:
            pool, start = self._family_pool(self, family), 0
            for split, fraction in SPLIT_FRACTIONS.items():
                end = start + round(fraction * len(pool))
                splits[split][family] = pool[start:end]
                start = end
        return splits

    def tasks(self, split: str, n: int | None = None, key: str | None = None) -> list[Task]:
        """Up to `n` tasks of a split, the families taking turns so that every family is represented. When the split
        holds fewer than `n`, it says so, naming `key` (the config key that asked for `n`)."""
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; choose one of {SPLITS}")
        pools = [list(self._splits[split][f]) for f in FAMILIES]
        prompts: list[str] = []
        while any(pools) and (n is None or len(prompts) < n):
            for pool in pools:
                if pool and (n is None or len(prompts) < n):
                    prompts.append(pool.pop(0))
        if key is not None and n is not None and len(prompts) < n:
            print(f"{key}: {n} asked, but the toy world's {split.upper()} split holds {len(prompts)} prompts: "
                  "all of them are used")
        return [self.task_for(p) for p in prompts]


    # ---- prompting a base model with a "fake document" ----------------------------------------------------
    def fewshot_prompt(self, prompt: str, shots: int = 3) -> str:
        """A FAQ page whose last answer is left open: the way to make a document completer act as an assistant."""
        rng = random.Random(f"fewshot-{self.seed}")
        families = ("fact", "arithmetic", "list", "open")
        examples = [self.task_for(rng.choice(self._splits["sft"][families[i % 4]])) for i in range(shots)]
        lines = [f"Q: {t.prompt}\nA: {t.answer}" for t in examples]
        return "Frequently asked questions\n" + "\n".join(lines) + f"\nQ: {prompt}\nA:"



@dataclass
class WorldArguments:
    """The toy world's config keys, shared by every stage that uses it: the same keys give the same world."""

    world_seed: int = field(default=0, metadata={"help": "Seed of the toy world (entities, corpus, prompts)."})
    world_entities: int = field(default=NUM_ENTITIES, metadata={
        "help": "Animals in the toy world, 5 attributes each."})
    world_max_operand: int = field(default=MAX_OPERAND, metadata={
        "help": "Largest operand of the toy world's sums and differences."})

    def world(self) -> ToyWorld:
        return ToyWorld(self.world_seed, self.world_entities, self.world_max_operand)

