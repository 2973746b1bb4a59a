"""A run: config -> parts -> Lightning fit -> metrics.json, and what it needs on the way
(the LightningModule, callbacks, checkpoints, DDP, progress)."""
