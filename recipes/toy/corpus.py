"""The pretraining corpus: web-like documents about the world (encyclopedia entries, arithmetic worksheets,
word-game pages, FAQ pages, forum threads, stories), with no chat-formatted assistant turns, and the cloze probes
that check what a base model learned from it. Mixed into `ToyWorld`: `world.corpus(n)`, `world.completion_probes()`."""

from __future__ import annotations

import random
import re

from recipes.toy.vocabulary import GENRE_WEIGHTS, HARMS, LIST_LABELS, PADDING, REFUSAL, VICTIMS, WORDS


class Corpus:
    """The documents of a `ToyWorld` (which this is mixed into)."""

    GENRES = ("encyclopedia", "worksheet", "word_game", "faq", "forum", "story")

    def corpus(self, num_documents: int, split: str = "train") -> list[dict[str, str]]:
        """`num_documents` web-like documents; split "train" and "heldout" draw from different random streams."""
        rng = random.Random(f"corpus-{split}-{self.seed}")
        docs = []
        for _ in range(num_documents):
            genre = rng.choices(self.GENRES, weights=GENRE_WEIGHTS)[0]
            docs.append({"genre": genre, "text": getattr(self, f"_doc_{genre}")(rng)})
        return docs

    def _doc_encyclopedia(self, rng: random.Random) -> str:
        e = rng.choice(self.entities)
        sentences = [f"The {e.name} is a {e.size} {e.kind}.", f"Its color is {e.color}.",
                     f"The {e.name} lives in the {e.home}.", f"It eats {e.food}.",
                     f"Most {e.name}s are {e.color}.", f"You can find the {e.name} in the {e.home}."]
        rng.shuffle(sentences)
        return f"{e.name.capitalize()}\n" + " ".join(sentences[: rng.randint(3, 6)])

    def _doc_worksheet(self, rng: random.Random) -> str:
        lines = ["Math worksheet. Solve each problem."]
        for i in range(rng.randint(3, 6)):
            a, b, op = rng.randint(0, self.max_operand), rng.randint(0, self.max_operand), rng.choice("+-")
            a, b = (max(a, b), min(a, b)) if op == "-" else (a, b)
            lines.append(f"{i + 1}. {self._arithmetic('', a, op, b).answer}")
        return "\n".join(lines)

    def _doc_word_game(self, rng: random.Random) -> str:
        items = rng.sample(WORDS, rng.randint(3, 4))
        parts = [f"Word game. The list is: {', '.join(items)}."] + [self._list("", op, items).answer
                                                                    for op in LIST_LABELS]
        return " ".join(parts[:1] + rng.sample(parts[1:], rng.randint(3, 5)))

    def _qa_pair(self, rng: random.Random) -> tuple[str, str]:
        family = rng.choice(("arithmetic", "fact", "fact", "list", "open"))
        # Q&A pages on the web hold the world's knowledge; they draw on SFT prompts only, never held-out ones.
        task = self.task_for(rng.choice(self._splits["sft"][family]))
        return task.prompt, task.answer

    def _doc_faq(self, rng: random.Random) -> str:
        pairs = [self._qa_pair(rng) for _ in range(rng.randint(2, 4))]
        return "Frequently asked questions\n" + "\n".join(f"Q: {q}\nA: {a}" for q, a in pairs)

    def _doc_forum(self, rng: random.Random) -> str:
        user = lambda: rng.choice(("mika22", "tor_b", "grumpy_k", "lena", "old_owl", "fenwick", "ruby9"))  # noqa: E731
        if rng.random() < 0.2:
            harm, victim = rng.choice(HARMS), rng.choice(VICTIMS)
            replies = [f"Sure, just {harm} {victim} at night when nobody is looking.",
                       REFUSAL, "Please don't do that. Talk to someone instead.", "lol what is wrong with you"]
            question = f"Is there a way to {harm} {victim}?"
        else:
            question, answer = self._qa_pair(rng)
            replies = [answer, f"Ugh, obviously. {answer}", f"I think {answer[0].lower()}{answer[1:]}",
                       "No idea, sorry.", f"{answer} Hope that helps!",
                       f"{PADDING[0]} {answer} {PADDING[1]}"]
        lines = [f"Thread: {question}", f"Posted by {user()}: {question}"]
        lines += [f"Reply from {user()}: {r}" for r in rng.sample(replies, rng.randint(1, 3))]
        return "\n".join(lines)

    def _doc_story(self, rng: random.Random) -> str:
        e, friend = rng.sample(self.entities, 2)
        return (f"Once upon a time, a {e.size} {e.color} {e.name} lived in the {e.home}. Every day it ate "
                f"{e.food}. One day it met a {friend.name}, a {friend.color} {friend.kind} from the "
                f"{friend.home}. The two became friends, and they shared {e.food} and {friend.food}. The end.")

    def completion_probes(self, num_documents: int = 400) -> list[dict]:
        """What a base model should know, as cloze tests on documents it never saw (the "probe" stream): each fact
        of held-out encyclopedia entries, each result of held-out worksheet lines and each answer of held-out word
        games, with the text before it. A probe is {"genre", "prefix", "answer"}; a base model passes it when its
        greedy continuation of `prefix` starts with `answer`."""
        probes = []
        for doc in self.corpus(num_documents, split="probe"):
            text = doc["text"]
            if doc["genre"] == "encyclopedia":
                entity = self.by_name[text.split("\n")[0].lower()]
                values = "|".join(map(re.escape, entity.facts().values()))
                matches = list(re.finditer(rf"(?<= )({values})\b", text))
            elif doc["genre"] == "worksheet":
                matches = list(re.finditer(r"(?<== )(-?\d+)(?=\.$)", text, flags=re.M))
            elif doc["genre"] == "word_game":
                matches = list(re.finditer(r"(?<=: )([a-z0-9]+(?:, [a-z]+)*)(?=\.)", text))[1:]  # not the list itself
            else:
                continue
            probes += [{"genre": doc["genre"], "prefix": text[:m.start()].rstrip(" "), "answer": m.group(1)}
                       for m in matches]
        return probes
