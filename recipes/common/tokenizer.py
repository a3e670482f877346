"""A byte-level BPE tokenizer trained from scratch, with the chat tokens and template an assistant needs.

The template wraps each turn in `<|im_start|>role ... <|im_end|>` (ChatML) and marks the assistant's text with
`{% generation %}` so that TRL's `assistant_only_loss` trains on the assistant's tokens alone. `<|im_end|>` is the
eos token: it ends an assistant turn, and generation stops there. `<|endoftext|>` separates pretraining documents
and is also the bos token that starts every sequence, a chat included.
The pad token is a token of its own, so padding is never mistaken for an end of turn.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import AutoConfig, PreTrainedTokenizerFast

from recipes.common.errors import ConfigError, InputError

END_OF_TEXT, IM_START, IM_END, PAD = "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|pad|>"

CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}"
    "{{ '<|im_start|>assistant\n' }}{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}"
    "{{ '\n' }}"
    "{% else %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def train_tokenizer(texts: Iterable[str], vocab_size: int) -> PreTrainedTokenizerFast:
    tokenizer = Tokenizer(models.BPE())
    # Runs of digits are split off first, so a number is the same token(s) wherever it stands: without this,
    # "27" at the start of an answer and " 27" after a space are different tokens, and a small model has to
    # learn every sum twice.
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=False),
                                                       pre_tokenizers.ByteLevel(add_prefix_space=False)])
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[END_OF_TEXT, IM_START, IM_END, PAD],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer)
    # Every sequence starts with <|endoftext|>, as every pretraining block does: without a fixed first token a
    # small model reads the start of a short prompt badly.
    tokenizer.post_processor = processors.TemplateProcessing(
        single=f"{END_OF_TEXT} $A", pair=f"{END_OF_TEXT} $A $B",
        special_tokens=[(END_OF_TEXT, tokenizer.token_to_id(END_OF_TEXT))])
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=END_OF_TEXT,
        eos_token=IM_END,
        pad_token=PAD,
        additional_special_tokens=[IM_START],
        chat_template=CHAT_TEMPLATE,
        model_max_length=1024,
    )


# Why the pad token matters: PPO (TRL's get_reward and its forward passes) finds padding by token id, hiding every
# token equal to pad from the models and reading the reward just before the first one; a reward model finds its
# last token the same way (config.pad_token_id). A pad equal to the eos that ends each turn hides every end of turn,
# the prompt's included, and moves where the reward is read, so the same answer scores differently in PPO than in
# reward training. Base models often have no pad token, or pad with eos (SmolLM2, Qwen2.5).
PAD_WHY = ("padding is found by token id (PPO, reward models), so a pad that is the eos would hide every end of "
           "turn and move where the reward is read")


def read_template(chat_template_path: str | None) -> str | None:
    """The template text of SFT's `chat_template_path` where it is a Jinja file (TRL also takes a tokenizer's
    directory or Hub id, whose template it copies with its tokens: None here)."""
    if chat_template_path and chat_template_path.endswith((".jinja", ".j2")) and Path(chat_template_path).is_file():
        return Path(chat_template_path).read_text(encoding="utf-8")
    return None


def template_token_ids(tokenizer, chat_template: str | None = None) -> set[int]:
    """The ids of a short conversation rendered by the chat template: a pad token must not be one of them."""
    messages = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]
    template = chat_template or tokenizer.chat_template
    if template is None:
        return set()
    for turns in ([{"role": "system", "content": "Be kind"}, *messages], messages):
        try:
            text = tokenizer.apply_chat_template(turns, chat_template=template, tokenize=False)
        except Exception:  # a template that rejects a system turn
            continue
        return set(tokenizer(text, add_special_tokens=False)["input_ids"])
    return set()


def settle_pad(tokenizer, source: str, *, eos_token: str | None = None, chat_template: str | None = None,
               pad_token: str | None = None) -> str | None:
    """Make `tokenizer` (in place) pad with a token that is neither its eos (`eos_token` where training sets one)
    nor written by its chat template: `pad_token` when configured, else its own pad token when that is usable, else
    its first special token that is. Returns a line for the log when the pad changed; raises when `pad_token` is
    unusable, or when no special token is free.
    """
    vocab = tokenizer.get_vocab()
    eos = eos_token or tokenizer.eos_token
    written = template_token_ids(tokenizer, chat_template)

    def unusable(token: str) -> str | None:
        if token not in vocab:
            return "is not a token of its vocabulary"
        if token == eos:
            return "is the eos token that ends each turn"
        if vocab[token] in written:
            return "is written by its chat template"
        return None

    special = [t.content for _, t in sorted(tokenizer.added_tokens_decoder.items()) if t.special]
    free = [t for t in dict.fromkeys([*special, tokenizer.unk_token]) if t and unusable(t) is None]
    if pad_token is not None:
        if unusable(pad_token):
            raise ConfigError(f"pad_token: {pad_token!r} {unusable(pad_token)} ({source}'s tokenizer); {PAD_WHY}. "
                              f"Choose a token its chat template never writes{f', e.g. {free[0]!r}' if free else ''}")
        tokenizer.pad_token = pad_token
        return None
    current = tokenizer.pad_token
    if current is not None and unusable(current) is None:
        return None
    problem = "has no pad token" if current is None else f"pads with {current!r}, which {unusable(current)}"
    if not free:
        raise InputError(f"{source}: its tokenizer {problem}, and every special token is its eos or written by its "
                         f"chat template; {PAD_WHY}. Set pad_token to a token of its vocabulary that its chat "
                         "template never writes")
    tokenizer.pad_token = free[0]
    return f"pad_token: {source}'s tokenizer {problem}; padding with {free[0]!r} instead ({PAD_WHY})"


def check_reward_pad(reward_model_path: str, pad_token_id: int, key: str = "reward_model_path",
                     padder: str = "the policy") -> None:
    """A reward model reads its score at the last token that is not its config's pad_token_id: it must be the
    policy's pad, or the score is read elsewhere than in reward training (or at a pad token)."""
    config_pad = AutoConfig.from_pretrained(reward_model_path).pad_token_id
    if config_pad != pad_token_id:
        raise InputError(f"{key}: {reward_model_path} finds its last token through pad_token_id {config_pad} "
                         f"(config.json), but {padder} pads with id {pad_token_id}: its scores would be read at "
                         "the wrong token. Train the reward model with recipes.reward from the policy's SFT model, "
                         f"or set pad_token_id in its config.json to the id {padder} pads with")
