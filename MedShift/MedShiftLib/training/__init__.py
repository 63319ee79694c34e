"""Training a checkpoint from a data folder: data set, loss step, EMA, run loop, resume, reports, torchrun.
"""
