"""The toy world: a synthetic stand-in for the internet, the demonstrators and the human labelers.

    python -m recipes.toy --seed 0     # prints a sample of everything the world makes

Everything here is deterministic from one seed. The world has invented animals with five attributes each; from
them it writes

- a pretraining corpus of web-like documents (encyclopedia entries, arithmetic worksheets, word-game pages, FAQ
  pages, forum threads, stories). It holds no chat-formatted assistant turns: a model pretrained on it is a
  document completer, not an assistant;
- instruction prompts in five task families with checkable answers (`FAMILIES`), split into disjoint pools for
  SFT demonstrations, comparisons, PPO and held-out evaluation (`SPLITS`);
- demonstrations by simulated demonstrators that make mistakes at configurable rates (`Demonstrator`);
- a gold labeler that scores a response to a prompt by a fixed rubric and, in its noisy mode, ranks responses the
  way a human labeler would, disagreeing with the noise-free ranking now and then (`GoldLabeler`).

One module per part: `vocabulary` (what the world is made of: attributes, words, templates, its default size),
`world` (the animals and the prompts, `ToyWorld`), `corpus` (the pretraining documents and the cloze probes),
`demonstrators`, `labeler`. Everything a recipe needs is importable from `recipes.toy`.
"""

from recipes.toy.demonstrators import Demonstrator
from recipes.toy.labeler import (
    DEFAULT_LABELER_TEMPERATURE,
    HARMFUL_COMPLIANCE_CAP,
    HARMLESS_REFUSAL_SCORE,
    REFUSALS,
    RUBRIC_WEIGHTS,
    RUDE_WORDS,
    WORD_LIMITS,
    GoldLabeler,
)
from recipes.toy.vocabulary import (
    ATTRIBUTES,
    FAMILIES,
    GENRE_WEIGHTS,
    MAX_OPERAND,
    NUM_ENTITIES,
    PADDING,
    REFUSAL,
    SPLIT_FRACTIONS,
    SPLITS,
    WORDS,
)
from recipes.toy.world import Entity, Task, ToyWorld, WorldArguments

__all__ = ["ATTRIBUTES", "DEFAULT_LABELER_TEMPERATURE", "FAMILIES", "GENRE_WEIGHTS", "HARMFUL_COMPLIANCE_CAP",
           "HARMLESS_REFUSAL_SCORE", "MAX_OPERAND", "NUM_ENTITIES", "PADDING", "REFUSAL", "REFUSALS", "RUBRIC_WEIGHTS",
           "RUDE_WORDS", "SPLIT_FRACTIONS", "SPLITS", "WORDS", "WORD_LIMITS", "Demonstrator", "Entity", "GoldLabeler",
           "Task", "ToyWorld", "WorldArguments"]
