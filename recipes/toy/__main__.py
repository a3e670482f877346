"""python -m recipes.toy --seed 0: prints a sample of everything the world makes."""

from __future__ import annotations

import argparse
import random

from recipes.toy import Demonstrator, GoldLabeler, ToyWorld
from recipes.toy import __doc__ as DOC


def main():
    parser = argparse.ArgumentParser(description=DOC.split("\n\n")[0])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    world = ToyWorld(args.seed)
    labeler = GoldLabeler(world, temperature=0)
    print(f"{len(world.entities)} entities, e.g. {world.entities[0]}\n")
    for doc in world.corpus(6):
        print(f"--- {doc['genre']}\n{doc['text']}\n")
    rng = random.Random(args.seed)
    for task in world.tasks("sft", 10):
        demo = Demonstrator().respond(world, task, rng)
        print(f"[{task.family}] {task.prompt}\n  ideal ({labeler.score(task.prompt, task.answer):.2f}): "
              f"{task.answer}\n  demo  ({labeler.score(task.prompt, demo):.2f}): {demo}")


if __name__ == "__main__":
    main()
