"""Training: one loop (fit.py) that LoRA training (train.py), calibration (mlx_lc.calibrate) and
pretraining (pretrain.py) configure; rows.py reads and tokenises prompt/completion rows, batches.py
orders and collates them and holds the loss, checkpoint.py saves and resumes a run."""
