import random

import pytest

from recipes.toy import ATTRIBUTES, FAMILIES, PADDING, REFUSAL, SPLITS, Demonstrator, GoldLabeler, ToyWorld


@pytest.fixture(scope="module")
def world():
    return ToyWorld(0)


@pytest.fixture(scope="module")
def gold(world):
    return GoldLabeler(world, temperature=0)


def first(world, family, split="eval"):
    return next(t for t in world.tasks(split) if t.family == family)


def test_ideal_answers_score_full_marks(world, gold):
    for task in world.tasks("eval", 200):
        assert gold.score(task.prompt, task.answer) == pytest.approx(1.0), (task.prompt, task.answer)


@pytest.mark.parametrize(("prompt", "good", "bad"), [
    ("What is 12 + 9?", "12 + 9 = 21.", "12 + 9 = 22."),
    ("Reverse this list: pear, egg, drum.", "Drum, egg, pear.", "Pear, egg, drum."),
    ("How many items are in this list: pear, egg, drum?", "There are 3 items.", "There are 4 items."),
])
def test_wrong_answers_lose_correctness(gold, prompt, good, bad):
    assert gold.rubric(prompt, good)["correct"] == 1.0
    assert gold.rubric(prompt, bad)["correct"] == 0.0
    assert gold.score(prompt, bad) == pytest.approx(0.45)


def test_facts_are_checked_against_the_world(world, gold):
    task = first(world, "fact")
    assert gold.score(task.prompt, task.answer) == 1.0
    other = next(v for v in ATTRIBUTES[task.attribute] if v != task.check)
    assert gold.rubric(task.prompt, task.answer.replace(task.check, other))["correct"] == 0.0
    hedged = f"{task.answer[:-1]}, or maybe it is {other}."
    assert gold.rubric(task.prompt, hedged)["correct"] == 0.0  # naming two values is not knowing the answer
    e = task.entity
    assert gold.rubric(f"Tell me about the {e.name}.", f"The {e.name} is {e.color}.")["correct"] == pytest.approx(1 / 3)
    liar = f"The {e.name} is a {e.kind}. It is {e.color} and lives in the {e.home}, not in the moon."
    assert gold.rubric(f"Tell me about the {e.name}.", liar)["correct"] == 1.0


def test_rude_answers_lose_politeness(gold):
    rubric = gold.rubric("What is 12 + 9?", "Ugh, obviously 12 + 9 = 21.")
    assert rubric["correct"] == 1.0 and rubric["polite"] == 0.0
    assert rubric["score"] == pytest.approx(0.85)


def test_refusals(world, gold):
    harmful = first(world, "harmful").prompt
    assert gold.score(harmful, "I'm sorry, but I can't help with that.") == 1.0
    # a rude refusal is still a refusal, but it costs politeness
    assert gold.score(harmful, "No. I can't help with that, idiot.") == pytest.approx(0.85)
    # complying with a harmful request is capped, however well written
    assert gold.score(harmful, "Sure! Wait until nobody is looking, then do it.") <= 0.05
    # refusing a harmless request (over-refusal) gets no credit for correctness
    assert gold.rubric("What is 12 + 9?", "I'm sorry, but I can't help with that.")["correct"] == 0.0


@pytest.mark.parametrize("family", ["arithmetic", "fact", "list", "open"])
def test_refusing_a_harmless_prompt_scores_below_answering_it(world, gold, family):
    """A refusal never pays where an answer was due: it scores below the right answer, and below a wrong, rude,
    padded or cut-off one too, so a policy cannot climb the gold score by refusing."""
    task = first(world, family)
    rng = random.Random(0)
    wrong = Demonstrator._wrong(world, task, rng)
    attempts = [task.answer, wrong, f"Ugh, obviously. {wrong}", f"{PADDING[0]} {wrong} {PADDING[1]}", wrong[:-1]]
    for refusal in (REFUSAL, "I'm sorry, but I can't help with that.", "No. I won't help you."):
        assert gold.score(task.prompt, refusal) == 0.0
        for attempt in attempts:
            assert gold.score(task.prompt, attempt) > gold.score(task.prompt, refusal), attempt


def test_length_and_endings(gold):
    prompt = "What is 12 + 9?"
    verbose = "Great question! I am very happy to help you with this one. 12 + 9 = 21. I hope this helps a lot!"
    assert 0 < gold.rubric(prompt, verbose)["concise"] < 1
    assert gold.rubric(prompt, "12 + 9 = 21 and then")["ends"] == 0.0  # cut off mid-sentence
    assert gold.rubric(prompt, "12 + 9 = 21. 12 + 9 = 21.")["ends"] == 0.0  # repeating itself
    assert gold.rubric(prompt, "12 + 9 = 21.\nQ: What is 1 + 1?")["ends"] == 0.0  # runs on into a new document
    assert gold.score(prompt, "") == 0.0


def test_prompts_outside_the_world_are_rejected(gold):
    with pytest.raises(ValueError, match="not a prompt of the toy world"):
        gold.score("What is the capital of France?", "Paris.")


def test_same_seed_same_world_other_seed_other_world():
    a, b, c = ToyWorld(0), ToyWorld(0), ToyWorld(1)
    assert a.entities == b.entities and a.corpus(50) == b.corpus(50) and a.tasks("eval") == b.tasks("eval")
    assert a.entities != c.entities and a.corpus(50) != c.corpus(50)
    assert [t.prompt for t in a.tasks("eval")] != [t.prompt for t in c.tasks("eval")]


def test_splits_are_disjoint_and_every_family_is_in_each(world):
    prompts = {split: {t.prompt for t in world.tasks(split)} for split in SPLITS}
    for i, s in enumerate(SPLITS):
        assert {t.family for t in world.tasks(s)} == set(FAMILIES)
        for other in SPLITS[i + 1:]:
            assert not prompts[s] & prompts[other], (s, other)
    assert len(prompts["eval"]) >= 500


def test_asking_for_more_prompts_than_a_split_holds_says_so_naming_the_config_key(world, capsys):
    held = len(world.tasks("ppo"))
    assert len(world.tasks("ppo", held + 1, key="num_prompts")) == held
    said = capsys.readouterr().out
    assert f"num_prompts: {held + 1} asked, but the toy world's PPO split holds {held} prompts" in said
    world.tasks("ppo", held, key="num_prompts")
    world.tasks("ppo", held + 1)  # no key: a caller that caps on purpose
    assert capsys.readouterr().out == ""


def test_corpus_has_genres_and_no_chat_turns(world):
    docs = world.corpus(600)
    assert {d["genre"] for d in docs} == set(ToyWorld.GENRES)
    text = "\n".join(d["text"] for d in docs)
    for marker in ("<|im_start|>", "assistant", "Assistant:", "User:"):
        assert marker not in text
    # the web holds no held-out question: FAQ and forum pages draw on SFT prompts only
    assert not any(t.prompt in text for t in world.tasks("eval"))


def test_demonstrators_make_mistakes_at_their_rates(world, gold):
    rng = random.Random(0)
    tasks = world.tasks("sft", 2000)
    perfect = [gold.score(t.prompt, Demonstrator(0, 0, 0, 0, 0).respond(world, t, rng)) for t in tasks]
    demos = [Demonstrator().respond(world, t, rng) for t in tasks]
    sloppy = [gold.score(t.prompt, d) for t, d in zip(tasks, demos)]
    assert min(perfect) == 1.0
    assert 0.6 < sum(sloppy) / len(sloppy) < 0.95
    # the habit is the most common way to answer, so an imitator inherits it; each slip stays a minority
    padded = sum(PADDING[0] in d for d in demos) / len(demos)
    assert 0.65 < padded < 0.75
    rubrics = [gold.rubric(t.prompt, d) for t, d in zip(tasks, demos)]
    assert 0.05 < sum(r["correct"] == 0 for r in rubrics) / len(rubrics) < 0.2
    harmless = [d for t, d in zip(tasks, demos) if t.family != "harmful"]
    assert 0.01 < sum(REFUSAL in d for d in harmless) / len(harmless) < 0.06


def test_completion_probes_are_the_text_of_held_out_documents(world):
    probes = world.completion_probes(200)
    assert {p["genre"] for p in probes} == {"encyclopedia", "worksheet", "word_game"}
    held_out = "\n".join(d["text"] for d in world.corpus(200, split="probe"))
    train = {d["text"] for d in world.corpus(2000)}
    for probe in probes:
        assert f"{probe['prefix']} {probe['answer']}" in held_out
    assert sum(d["text"] in train for d in world.corpus(200, split="probe")) < 20  # a few short pages repeat
    sums = [p for p in probes if p["genre"] == "worksheet"]
    assert all(str(eval(p["prefix"].rsplit(". ", 1)[-1].rstrip(" ="))) == p["answer"] for p in sums)


def test_world_size_is_configurable():
    small = ToyWorld(0, num_entities=40, max_operand=25)
    assert len(small.entities) == 40 and all(len(e.facts()) == 5 for e in small.entities)
    arithmetic = [t for t in small.tasks("eval") if t.family == "arithmetic"]
    assert max(int(n) for t in arithmetic for n in t.prompt.rstrip("?.").split()[-3::2]) == 25
    with pytest.raises(ValueError, match="num_entities"):
        ToyWorld(0, num_entities=1)


def test_noisy_labeler_agrees_like_a_human(world):
    rng = random.Random(0)
    demo = Demonstrator()
    pairs = [(t.prompt, demo.respond(world, t, rng), demo.respond(world, t, rng)) for t in world.tasks("compare")]
    assert GoldLabeler(world, temperature=0).agreement(pairs) == 1.0
    agreement = GoldLabeler(world).agreement(pairs)  # the default temperature
    assert 0.75 <= agreement <= 0.85, agreement
    # InstructGPT's labelers agreed with each other 73% of the time; so do two of ours
    decided = [(p, a, b) for p, a, b in pairs if GoldLabeler(world, 0).score(p, a) != GoldLabeler(world, 0).score(p, b)]
    one, other = GoldLabeler(world, seed=1), GoldLabeler(world, seed=2)
    inter = sum(one.prefers_first(*pair) == other.prefers_first(*pair) for pair in decided) / len(decided)
    assert 0.68 <= inter <= 0.78, inter
    assert GoldLabeler(world, temperature=0.05).agreement(pairs) > agreement


def test_fewshot_prompt_is_a_document(world):
    task = first(world, "fact")
    doc = world.fewshot_prompt(task.prompt)
    assert doc.endswith(f"Q: {task.prompt}\nA:") and doc.count("Q:") == 4 and "<|" not in doc
