"""Batched sampling from a chat model, reward-model scores, and the KL between two policies."""

from __future__ import annotations

import math

import torch
from tqdm.auto import tqdm


def chat_texts(tokenizer, prompts: list[str]) -> list[str]:
    """User prompts rendered with the model's chat template, ending where the assistant starts."""
    return [tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False,
                                          add_generation_prompt=True) for p in prompts]


def stop_ids(model, tokenizer) -> list[int]:
    ids = model.generation_config.eos_token_id
    ids = [ids] if isinstance(ids, int) else list(ids or [])
    return sorted({*ids, tokenizer.eos_token_id} - {None})


@torch.no_grad()
def generate(model, tokenizer, texts: list[str], *, num_return_sequences: int = 1, max_new_tokens: int = 48,
             do_sample: bool = False, temperature: float = 1.0, batch_size: int = 64, stop_at_newline: bool = False,
             desc: str = "generating") -> list[list[str]]:
    """For each text, `num_return_sequences` continuations, cut at the first stop token (and, for few-shot
    documents, at the first newline), without special tokens."""
    model.eval()
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    eos = stop_ids(model, tokenizer)
    out: list[list[str]] = []
    try:
        for start in tqdm(range(0, len(texts), batch_size), desc=desc, leave=False):
            # chat texts carry their bos already (the template writes it); plain documents get the tokenizer's
            batch = tokenizer(texts[start:start + batch_size], return_tensors="pt", padding=True,
                              add_special_tokens=stop_at_newline).to(model.device)
            sequences = model.generate(
                **batch, max_new_tokens=max_new_tokens, do_sample=do_sample, num_return_sequences=num_return_sequences,
                eos_token_id=eos, pad_token_id=tokenizer.pad_token_id,
                **({"temperature": temperature, "top_k": 0, "top_p": 1.0} if do_sample else {}),
            )[:, batch["input_ids"].shape[1]:]
            decoded = tokenizer.batch_decode(sequences, skip_special_tokens=True)
            if stop_at_newline:
                decoded = [d.lstrip(" ").split("\n")[0] for d in decoded]
            decoded = [d.strip() for d in decoded]
            out += [decoded[i:i + num_return_sequences] for i in range(0, len(decoded), num_return_sequences)]
    finally:
        tokenizer.padding_side = side
    return out


def mean_ci(values: list[float]) -> dict:
    """Mean with a normal-approximation 95% confidence interval."""
    n = len(values)
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    half = 1.96 * sd / math.sqrt(n) if n > 1 else float("nan")
    return {"mean": mean, "ci95": [mean - half, mean + half], "n": n}


def conversation_ids(tokenizer, messages: list[dict]) -> list[int]:
    """A rendered conversation's token ids, cut right after its last eos: where PPO's reward is read, so the
    reward model is trained and scored at the same token (not at a newline the template adds after it)."""
    ids = tokenizer.apply_chat_template(messages, tokenize=True, return_dict=True)["input_ids"]
    ends = [i for i, t in enumerate(ids) if t == tokenizer.eos_token_id]
    return ids[: ends[-1] + 1] if ends else ids


@torch.no_grad()
def reward_scores(model, tokenizer, prompts: list[str], responses: list[str], batch_size: int = 64,
                  desc: str = "scoring") -> list[float]:
    """A sequence-classification reward model's score of each (prompt, response)."""
    model.eval()
    ids = [conversation_ids(tokenizer, [{"role": "user", "content": p}, {"role": "assistant", "content": r}])
           for p, r in zip(prompts, responses)]
    scores: list[float] = []
    for start in tqdm(range(0, len(ids), batch_size), desc=desc, leave=False):
        batch = ids[start:start + batch_size]
        width = max(map(len, batch))
        input_ids = torch.tensor([row + [tokenizer.pad_token_id] * (width - len(row)) for row in batch])
        mask = torch.tensor([[1] * len(row) + [0] * (width - len(row)) for row in batch])
        logits = model(input_ids=input_ids.to(model.device), attention_mask=mask.to(model.device)).logits
        scores += logits[:, 0].float().tolist()
    return scores


@torch.no_grad()
def kl_to_reference(policy, reference, tokenizer, prompts: list[str], *, max_new_tokens: int = 48,
                    batch_size: int = 64, desc: str = "KL to reference") -> dict:
    """KL(policy || reference) per response, estimated on responses sampled from the policy (temperature 1): the
    mean over responses of the summed log-ratio of their tokens, up to and including eos. Also their mean length."""
    policy.eval()
    reference.eval()
    side, tokenizer.padding_side = tokenizer.padding_side, "left"
    eos = stop_ids(policy, tokenizer)
    kls, lengths = [], []
    try:
        texts = chat_texts(tokenizer, prompts)
        for start in tqdm(range(0, len(texts), batch_size), desc=desc, leave=False):
            batch = tokenizer(texts[start:start + batch_size], return_tensors="pt", padding=True,
                              add_special_tokens=False).to(policy.device)
            width = batch["input_ids"].shape[1]
            sequences = policy.generate(**batch, max_new_tokens=max_new_tokens, do_sample=True, temperature=1.0,
                                        top_k=0, top_p=1.0, eos_token_id=eos, pad_token_id=tokenizer.pad_token_id)
            response = sequences[:, width:]
            is_eos = torch.isin(response, torch.tensor(eos, device=response.device))
            # keep tokens up to and including the first eos (generate pads after it)
            keep = (is_eos.cumsum(1) - is_eos.long()) == 0
            mask = torch.cat([batch["attention_mask"], keep.long()], 1)
            logratio = 0
            for model, sign in ((policy, 1), (reference, -1)):
                logits = model(input_ids=sequences, attention_mask=mask).logits[:, width - 1:-1].float()
                logratio = logratio + sign * logits.log_softmax(-1).gather(-1, response.unsqueeze(-1)).squeeze(-1)
            kls += (logratio * keep).sum(1).tolist()
            lengths += keep.sum(1).tolist()
    finally:
        tokenizer.padding_side = side
    return {"kl": mean_ci(kls), "mean_tokens": sum(lengths) / len(lengths)}
