"""Resuming TRL's PPO trainer after a kill: its `train()` always starts again from episode 0 (TRL #2657).

At every save, `ResumablePPOTrainer` writes into the checkpoint, before the Trainer's own files (the policy's
adapter, optimizer, scheduler, RNG states, `trainer_state.json` last, so a checkpoint cut off by a kill has none
and is not resumed from), `trainable.safetensors` (every weight being trained: the policy's adapter and the value
model) and `data_order.pt` (the RNG state the current epoch's shuffle was drawn from, and how many of its batches
were used). `train(resume_from_checkpoint=...)` puts all of it back before the first rollout, so the resumed run
draws the batches and samples the uninterrupted one would have: on the same machine its figures are the same.

    trainer = ResumablePPOTrainer(...)   # PPOTrainer's arguments
    trainer.train(resume_from_checkpoint=run_dir.last_checkpoint(output_dir))
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from transformers import TrainerCallback
from trl.experimental.ppo import PPOTrainer
from trl.experimental.ppo.ppo_trainer import OnlineTrainerState

from recipes.common.errors import InputError

WEIGHTS = "trainable.safetensors"


class ShuffleRecorder:
    """The PPO trainer's dataloader, unchanged, that also keeps the torch RNG state each epoch's shuffle is drawn
    from (the sampler draws its seed from the global RNG when an epoch starts) and how many batches of the epoch
    were used; `replay` makes its next epoch the recorded one, less the batches already used."""

    def __init__(self, loader):
        self.loader, self.epoch_rng, self.used, self.pending = loader, None, 0, None

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        skip = 0
        if self.pending is not None:  # resuming: draw the killed run's order from its RNG state, then carry on
            (self.epoch_rng, skip), self.pending = self.pending, None
            now = torch.random.get_rng_state()
            torch.random.set_rng_state(self.epoch_rng)
        else:
            self.epoch_rng = torch.random.get_rng_state()
        self.used = 0
        for batch in self.loader:
            self.used += 1
            if self.used == skip:
                torch.random.set_rng_state(now)  # the order is drawn; the checkpoint's RNG state goes on from here
            if self.used > skip:
                yield batch

    def state(self) -> dict:
        """Where the data stands: None when the current epoch is used up (the next one is drawn afresh)."""
        if self.epoch_rng is None or self.used in (0, len(self.loader)):
            return {"epoch_rng": None, "used": 0}
        return {"epoch_rng": self.epoch_rng, "used": self.used}

    def replay(self, state: dict) -> None:
        if state["epoch_rng"] is not None:
            self.pending = (state["epoch_rng"], state["used"])


class _RestoreFirst(TrainerCallback):
    """Runs first at `on_train_begin`, after PPOTrainer.train() has reset its counters and before the first rollout
    and the other callbacks (the progress bar starts from the restored step; the gold monitor finds its checks)."""

    def __init__(self, trainer: ResumablePPOTrainer):
        self.trainer = trainer

    def on_train_begin(self, args, state, control, **kwargs):
        if self.trainer.resume_from is not None:
            self.trainer.restore(self.trainer.resume_from)


class ResumablePPOTrainer(PPOTrainer):
    """TRL's PPOTrainer, whose checkpoints hold all a resumed run needs (see the module's docstring)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Under DDP `self.model` is the wrapper, and TRL's PPO trainer reaches for `self.model.policy` (the
        # reference's forward pass, save_model) and `self.model.config` (the checkpoint's model card): an
        # AttributeError on the first rollout (TRL #2375). Both are looked up past the wrapper, not registered in
        # it, so DDP's parameters and gradients are unchanged.
        for name in ("policy", "config"):
            if not hasattr(self.model, name):
                object.__setattr__(self.model, name, getattr(self.accelerator.unwrap_model(self.model), name))
        # set by Trainer.__init__, which PPOTrainer does not call; transformers' save_model reads it on every
        # process but the main one
        self.is_distributed_loading_by_transformers = False
        self.dataloader = ShuffleRecorder(self.dataloader)
        self.callback_handler.callbacks.insert(0, _RestoreFirst(self))
        self.resume_from: str | None = None

    def train(self, resume_from_checkpoint: str | None = None):
        self.resume_from, total = resume_from_checkpoint, self.args.num_total_batches
        try:
            return super().train()
        finally:
            self.args.num_total_batches, self.resume_from = total, None

    def _data_order(self, folder: Path) -> Path:
        """Each process's data order, as the Trainer keeps each process's RNG state."""
        return folder / (f"data_order_{self.args.process_index}.pt" if self.args.world_size > 1 else "data_order.pt")

    def _save_checkpoint(self, model, trial):
        folder = Path(self._get_output_dir(trial=trial)) / f"checkpoint-{self.state.global_step}"
        folder.mkdir(parents=True, exist_ok=True)
        if self.args.should_save:
            trained = self.accelerator.unwrap_model(self.model).named_parameters()
            save_file({name: p.detach().cpu().contiguous() for name, p in trained if p.requires_grad},
                      folder / WEIGHTS)
        torch.save(self.dataloader.state(), self._data_order(folder))
        super()._save_checkpoint(model, trial)  # writes trainer_state.json last

    def restore(self, checkpoint: str) -> None:
        """Weights, optimizer, scheduler, RNG, counters, log history and data order from `checkpoint`."""
        folder = Path(checkpoint)
        weights = load_file(folder / WEIGHTS)
        model = self.accelerator.unwrap_model(self.model)
        unexpected = model.load_state_dict(weights, strict=False).unexpected_keys
        trained = {name for name, p in model.named_parameters() if p.requires_grad}
        if unexpected or set(weights) != trained:
            raise InputError(f"{checkpoint} holds other weights than this run trains (another model or LoRA "
                             "setting); remove it to start over")
        # the Trainer's own loader expects attributes PPOTrainer never sets; the optimizer moves state to its params
        self.optimizer.load_state_dict(torch.load(folder / "optimizer.pt", map_location="cpu", weights_only=True))
        self.lr_scheduler.load_state_dict(torch.load(folder / "scheduler.pt", weights_only=True))
        self._load_rng_state(checkpoint)
        saved = OnlineTrainerState.load_from_json(str(folder / "trainer_state.json"))
        for key in ("global_step", "episode", "epoch", "log_history", "total_flos", "stateful_callbacks"):
            setattr(self.state, key, getattr(saved, key))
        self.dataloader.replay(torch.load(self._data_order(folder), weights_only=True))
        self.args.num_total_batches = self.state.max_steps - saved.global_step  # the updates still to do
        print(f"resuming from {checkpoint}: episode {saved.episode} of {self.args.total_episodes} "
              f"(update {saved.global_step} of {self.state.max_steps})")
