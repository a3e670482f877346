"""What the stage scripts share, one module per concern: `cli` (configs), `data` and `formats` (datasets and their
layouts), `tokenizer`, `adapters` (loading, merging LoRA), `generation` (sampling, reward scores, KL), `gold` (the
gold labeler's scores and this repo's metrics), `evaluation` (a model's report row), `report` (report.md),
`rl` (what the RL stages share), `labeling` (files for human labelers), `hub` (uploads), `run_dir` (a stage's
output directory)."""
