"""`medshift evaluate`: translation quality against baselines on a held-out simulated test set.
"""
