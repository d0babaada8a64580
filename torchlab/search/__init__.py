"""Recipe search with Optuna (`torchlab tune`, `torchlab.tune`): the search space (space.py), the study and its
workers (study.py), the trial's pruning callback (pruning.py), the storage (storage.py), and what a study leaves
behind: best.toml, trials.csv (results.py) and figures (figures.py). Optuna is the optional extra torchlab[tune]."""
